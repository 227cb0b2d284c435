"""The offline stack in one object: Azurite + the web-service host (+ the gateway).

>>> import azml_nb as az
>>> with az.local.start() as stack:                       # doctest: +SKIP
...     print(stack.info()["base_url"])
...     svc = stack.web_service()                         # an azml_nb.WebService
...     svc.score(pd.DataFrame({"Col2": ["This is a good day"]}))

``azml-nb serve`` does the same from a terminal and prints :meth:`OfflineStack.info` as
its first line.
"""
from __future__ import annotations

import logging
from typing import Any

from ..errors import LocalStackError
from .azurite import Azurite
from .experiments import Experiment, simple_feature_hashing_experiment
from .host import PublishedService, WebServiceHost

log = logging.getLogger(__name__)

__all__ = ["OfflineStack", "start", "DEFAULT_CONTAINER", "GATEWAY_SUBSCRIPTION"]

#: The gateway subscription whose key info() hands out (product "unlimited", no rate limit).
GATEWAY_SUBSCRIPTION = "demo-unlimited"

#: The blob container the stack creates for batch jobs (the client's default too).
DEFAULT_CONTAINER = "azureml"


class OfflineStack:
    """A running offline stack. Use as a context manager or call :meth:`stop`.

    Attributes
    ----------
    host : WebServiceHost
        The web-service host (``host.base_url``, ``host.faults``, ...).
    azurite : Azurite or None
        The blob storage emulator (None when started with ``storage=False``).
    gateway : object or None
        The APIM-style gateway, when the stack runs one.
    service : PublishedService
        The experiment published at start (the seed's feature-hashing experiment by default).
    storage_container : str
        Blob container created for batch jobs.
    """

    def __init__(self, *, host: WebServiceHost, azurite: Azurite | None, service: PublishedService,
                 storage_container: str = DEFAULT_CONTAINER, owns_azurite: bool = True):
        self.host = host
        self.azurite = azurite
        self._owns_azurite = owns_azurite
        self.gateway: Any = None
        self.service = service
        self.storage_container = storage_container

    @property
    def base_url(self) -> str | None:
        return self.host.base_url

    @property
    def storage_connection_string(self) -> str | None:
        """Connection string of the Azurite development account (holds its key), or None."""
        return self.azurite.connection_string if self.azurite is not None else None

    def publish(self, experiment: Experiment, **options: Any) -> PublishedService:
        """Publish another experiment on the host (see :meth:`WebServiceHost.publish`)."""
        return self.host.publish(experiment, **options)

    def info(self, service: PublishedService | None = None) -> dict[str, Any]:
        """Everything a client needs, as one dict (what ``azml-nb serve`` prints first).

        Keys: base_url, workspace, service, api_key, storage_connection_string,
        storage_container (and gateway_url, subscription_key when a gateway runs).
        """
        svc = service or self.service
        info = {
            "base_url": self.host.base_url,
            "workspace": svc.workspace,
            "service": svc.service,
            "api_key": svc.api_key,
            "storage_connection_string": self.storage_connection_string,
            "storage_container": self.storage_container,
        }
        # the gateway holds the backend key of the service published at start only
        if self.gateway is not None and svc is self.service:
            info["gateway_url"] = self.gateway.api_url()
            info["subscription_key"] = self.gateway.subscriptions[GATEWAY_SUBSCRIPTION].primary_key
        return info

    def web_service(self, service: PublishedService | None = None, **options: Any):
        """An :class:`azml_nb.WebService` for *service* (default: the one published at start).

        *options* go to :meth:`azml_nb.WebService.from_info` (e.g. ``gateway=False``).
        """
        from ..service import WebService

        return WebService.from_info(self.info(service), **options)

    def stop(self) -> None:
        """Stop the gateway, the host and Azurite (each by its own handle)."""
        gateway, self.gateway = self.gateway, None
        if gateway is not None:
            gateway.stop()
        self.host.stop()
        if self.azurite is not None and self._owns_azurite:
            self.azurite.stop()

    def __enter__(self) -> "OfflineStack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"<OfflineStack host={self.host.base_url} "
                f"azurite={self.azurite.blob_endpoint if self.azurite else None}>")


def start(*, experiment: Experiment | None = None, storage: bool | Azurite = True, host: str = "127.0.0.1",
          port: int = 0, azurite_port: int = 0, storage_container: str = DEFAULT_CONTAINER,
          gateway: bool = True, **host_options: Any) -> OfflineStack:
    """Start Azurite and the web-service host, and publish *experiment*.

    Parameters
    ----------
    experiment : Experiment, optional
        Published at start; default :func:`simple_feature_hashing_experiment`.
    storage : bool or Azurite
        True: start Azurite (needs Node.js and ``npm ci``); False: the host alone (RRS only);
        a running :class:`Azurite`: use it (the stack does not stop it).
    host, port : str, int
        Where the host listens (port 0 = a free port).
    azurite_port : int
        Azurite's port (0 = a free port).
    storage_container : str
        Blob container to create for batch jobs.
    gateway : bool
        Also start the APIM-style gateway in front of the host
        (:func:`azml_nb.local.gateway.demo_gateway`: products ``starter`` and ``unlimited``,
        one subscription each); ``info()`` then has ``gateway_url`` and ``subscription_key``.
    **host_options
        Passed to :class:`WebServiceHost` (``max_concurrent_calls``, ``faults``, ...).

    Returns
    -------
    OfflineStack
        Already running; a context manager that stops everything on exit.
    """
    blob, owns = None, True
    if isinstance(storage, Azurite):
        blob, owns = storage, False
    elif storage:
        blob = Azurite(host=host, port=azurite_port).start()
    try:
        web = WebServiceHost(**host_options).start(host=host, port=port)
        try:
            published = web.publish(experiment or simple_feature_hashing_experiment())
            if blob is not None:
                _create_container(blob.connection_string, storage_container)
        except BaseException:
            web.stop()
            raise
    except BaseException:
        if blob is not None and owns:
            blob.stop()
        raise
    stack = OfflineStack(host=web, azurite=blob, service=published, storage_container=storage_container,
                         owns_azurite=owns)
    if gateway:
        from .gateway import demo_gateway

        try:
            stack.gateway = demo_gateway(web.base_url, published.api_key).start(host=host)
        except BaseException:
            stack.stop()
            raise
    log.info("offline stack up: host %s, storage %s", web.base_url, blob.blob_endpoint if blob else None)
    return stack


def _create_container(connection_string: str, name: str) -> None:
    from azure.core.exceptions import AzureError, ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    try:
        BlobServiceClient.from_connection_string(connection_string).create_container(name)
    except ResourceExistsError:
        pass
    except AzureError as err:
        raise LocalStackError(f"cannot create blob container {name!r} on Azurite: "
                              f"{str(err).splitlines()[0]}") from err
