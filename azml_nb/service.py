"""Clients for AzureML web services: RRS scoring and BES batch jobs.

:class:`WebService` is the one object a caller holds. It owns a pooled
``requests.Session``; every HTTP call goes through one private method,
``WebService._send``, which applies time-outs, retries throttling and flaky
connections with jittered exponential backoff, and turns failures into
:mod:`azml_nb.errors` exceptions with the keys hidden.

>>> svc = WebService("ws", "svc", api_key, region="ussouthcentral")   # doctest: +SKIP
>>> scored = svc.score(df)                        # RRS: typed DataFrame, same index   # doctest: +SKIP
>>> job = svc.submit_batch(df, storage=store)     # BES: a poller                       # doctest: +SKIP
>>> job.result()                                                                        # doctest: +SKIP

The batch (BES) side lives in :mod:`azml_nb.bes`; :class:`BatchJob` and
:class:`JobStatus` are importable from here too.
"""
from __future__ import annotations

import concurrent.futures as cf
import email.utils
import json
import logging
import math
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import quote

import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from .bes import BatchJob, JobStatus
from .errors import (AuthenticationError, ConfigurationError, NotFoundError, PayloadError,
                     SchemaError, ServiceError, ThrottledError, redact)

log = logging.getLogger(__name__)

__all__ = ["WebService", "ScoreResult", "RetryPolicy", "BatchJob", "JobStatus",
           "DEFAULT_MAX_REQUEST_BYTES", "region_url"]

API_VERSION = "2.0"
#: Studio's front end refused bodies over 4 MiB ("Maximum request length exceeded");
#: stay a little under that by default.
DEFAULT_MAX_REQUEST_BYTES = 4_000_000
#: Statuses worth another try: time-outs, throttling, a gateway that lost its backend.
RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})
#: answers that say the request was not acted on, so that even a request that creates
#: something (a batch job) can be sent again; 502/504 may come after the backend acted
REFUSED_STATUSES = frozenset({408, 429, 503})
#: Regions that hosted Studio (classic) web services; any other well-formed name maps the same way.
KNOWN_REGIONS = ("ussouthcentral", "uswestcentral", "useast2", "europewest", "germanycentral",
                 "asiasoutheast", "japaneast", "australiaeast", "southindia", "ukwest",
                 "canadacentral", "brazilsouth")
_REQUEST_ID_HEADERS = ("x-ms-request-id", "x-ms-client-request-id", "request-id",
                       "x-request-id", "apim-request-id")
#: Transport failures worth another try; a connection cut while the answer streams in
#: surfaces as ChunkedEncodingError, not ConnectionError.
_TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout,
                     requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)
_ENV = ("AZML_WORKSPACE", "AZML_SERVICE", "AZML_API_KEY", "AZML_BASE_URL", "AZML_REGION",
        "AZML_GATEWAY_URL", "AZML_SUBSCRIPTION_KEY", "AZML_STORAGE_CONNECTION_STRING",
        "AZML_STORAGE_CONTAINER")


def region_url(region: str) -> str:
    """The Studio (classic) web-service host of a region.

    >>> region_url("europewest")
    'https://europewest.services.azureml.net'
    """
    if not re.fullmatch(r"[a-z][a-z0-9]*", region or ""):
        raise ConfigurationError(
            f"region must be a lowercase Azure region name such as {', '.join(KNOWN_REGIONS[:3])}; "
            f"got {region!r}")
    if region not in KNOWN_REGIONS:
        log.debug("region %r is not one Studio (classic) is known to have used", region)
    return f"https://{region}.services.azureml.net"


# --- retries -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """How :class:`WebService` retries 408/429/502/503/504 answers and connection errors.

    The n-th retry waits a random time in ``[0, min(backoff_max, backoff * 2**n)]``
    ("full jitter"), or ``Retry-After`` plus a little jitter when the answer names a wait.
    One request gives up after ``retries`` retries or when the next wait would pass
    ``deadline`` seconds since its first try, whichever comes first.

    >>> RetryPolicy(retries=0)        # never retry                     # doctest: +SKIP
    """

    retries: int = 8
    backoff: float = 0.5
    backoff_max: float = 30.0
    deadline: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number *attempt* (0-based)."""
        jitter = random.uniform(0.0, min(self.backoff_max, self.backoff * 2 ** attempt))
        if retry_after is not None:
            return retry_after + min(jitter, 1.0)
        return jitter


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: ``"7"``, an HTTP date, or APIM's ``"00:57:12"``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    m = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})", value)
    if m:
        days, h, mi, s = (int(g or 0) for g in m.groups())
        return float(((days * 24 + h) * 60 + mi) * 60 + s)
    m = re.fullmatch(r"([\d.]+)\s*days?", value)
    if m:
        return float(m.group(1)) * 86400.0
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --- results -------------------------------------------------------------------------------

@dataclass
class ScoreResult:
    """What ``score(..., errors="collect")`` returns: the rows that came back, and the batches that did not.

    Attributes
    ----------
    output : DataFrame or dict of DataFrame
        Scored rows of every batch that succeeded, in input order, with the input's index.
    failures : list of ServiceError
        One per failed batch; ``err.rows`` holds that batch's row positions in the input.
    input : DataFrame or dict of DataFrame
        The frame(s) that were scored, so :attr:`failed_input` can pick the failed rows.

    Examples
    --------
    >>> res = svc.score(df, errors="collect")          # doctest: +SKIP
    >>> res.ok, len(res.output), res.failed_rows[:3]   # doctest: +SKIP
    (False, 99000, [4000, 4001, 4002])
    >>> retried = svc.score(res.failed_input)          # doctest: +SKIP
    """

    output: Any
    failures: list[ServiceError] = field(default_factory=list)
    input: Any = None
    split_input: str | None = None

    @property
    def ok(self) -> bool:
        """True when every batch succeeded."""
        return not self.failures

    @property
    def failed_rows(self) -> list[int]:
        """Positions (0-based) of the input rows whose batch failed, ascending."""
        return sorted(i for err in self.failures for i in (err.rows or ()))

    @property
    def failed_input(self) -> Any:
        """The input rows whose batch failed, with their original index (ready to score again).

        With several inputs, a dict: the batched input's failed rows, the others whole.
        """
        if isinstance(self.input, pd.DataFrame):
            return self.input.iloc[self.failed_rows]
        if self.split_input is None:   # several inputs sent whole: all of them failed, or none
            return self.input if self.failures else {k: v.iloc[:0] for k, v in self.input.items()}
        return {k: (v.iloc[self.failed_rows] if k == self.split_input else v) for k, v in self.input.items()}

    def raise_for_failures(self) -> None:
        """Raise the first failure, if any."""
        if self.failures:
            raise self.failures[0]

    def __repr__(self) -> str:
        n = (len(self.output) if isinstance(self.output, pd.DataFrame)
             else {k: len(v) for k, v in self.output.items()})
        return (f"<ScoreResult rows={n} failed_batches={len(self.failures)} "
                f"failed_rows={len(self.failed_rows)}>")


@dataclass
class _Piece:
    start: int
    stop: int
    outputs: dict[Any, pd.DataFrame] | None = None
    error: ServiceError | None = None


class _Cancelled(Exception):
    """Internal: another batch failed, stop working."""


# --- the client ----------------------------------------------------------------------------

class WebService:
    """A Studio (classic) AzureML web service: RRS scoring and BES batch jobs.

    Parameters
    ----------
    workspace, service : str
        The workspace id and service id in the endpoint URL.
    api_key : str, optional
        The service's key, sent as ``Authorization: Bearer``. Required when calling the
        service directly; through a gateway it is sent only when given (usually the
        gateway holds it).
    base_url : str, optional
        e.g. ``"https://ussouthcentral.services.azureml.net"`` or the local host's URL.
    region : str, optional
        Instead of *base_url*: ``"ussouthcentral"``, ``"europewest"``, ...
    gateway_url : str, optional
        An APIM gateway in front of the service, with its API suffix
        (``https://NAME.azure-api.net/azureml-demo``). Requests then go to
        ``{gateway_url}/workspaces/{workspace}/services/{service}/...``.
    subscription_key : str, optional
        The gateway subscription key, sent as ``Ocp-Apim-Subscription-Key``.
    session : requests.Session, optional
        Use this session (proxies, certificates, adapters) instead of a pooled one made
        here. An injected session is not closed by :meth:`close`.
    timeout : float or (float, float)
        Connect and read time-outs in seconds for each HTTP request.
    retry : RetryPolicy, optional
        Retry and backoff settings (default :class:`RetryPolicy()`).
    max_workers : int
        Concurrent requests in :meth:`score`.
    batch_size : int
        Most rows in one scoring request.
    max_request_bytes : int
        Largest encoded request body; batches are cut smaller to stay under it.
    storage : BlobStorage or str, optional
        Default blob container for :meth:`submit_batch` (a connection string means its
        container ``azureml``).

    Examples
    --------
    >>> svc = WebService("ws", "svc", "key", region="europewest")
    >>> svc
    WebService(workspace='ws', service='svc', url='https://europewest.services.azureml.net', api_key='***')
    >>> svc.execute_url()
    'https://europewest.services.azureml.net/workspaces/ws/services/svc/execute?api-version=2.0&details=true'
    """

    def __init__(self, workspace: str, service: str, api_key: str | None = None, *,
                 base_url: str | None = None, region: str | None = None,
                 gateway_url: str | None = None, subscription_key: str | None = None,
                 session: requests.Session | None = None,
                 timeout: float | tuple[float, float] = (10.0, 120.0),
                 retry: RetryPolicy | None = None, max_workers: int = 4, batch_size: int = 1000,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 storage: Any = None):
        if not workspace or not service:
            raise ConfigurationError("workspace and service are both required")
        if base_url and region:
            raise ConfigurationError("give base_url or region, not both")
        if region:
            base_url = region_url(region)
        if not base_url and not gateway_url:
            raise ConfigurationError(
                "no endpoint: give base_url=..., region=... or gateway_url=... "
                "(or set AZML_BASE_URL / AZML_REGION / AZML_GATEWAY_URL for from_env())")
        if not gateway_url and not api_key:
            raise ConfigurationError("api_key is required when calling the service directly")
        for url in (base_url, gateway_url):
            if url and not re.match(r"https?://", url):
                raise ConfigurationError(f"URL must start with http:// or https://, got {url!r}")
        if max_workers < 1 or batch_size < 1 or max_request_bytes < 1024:
            raise ConfigurationError(
                f"max_workers and batch_size must be >= 1 and max_request_bytes >= 1024; got "
                f"{max_workers}, {batch_size}, {max_request_bytes}")
        self.workspace = workspace
        self.service = service
        self.base_url = base_url.rstrip("/") if base_url else None
        self.gateway_url = gateway_url.rstrip("/") if gateway_url else None
        self._api_key = api_key
        self._subscription_key = subscription_key
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.max_workers = max_workers
        self.batch_size = batch_size
        self.max_request_bytes = max_request_bytes
        self._owns_storage = isinstance(storage, str)
        if isinstance(storage, str):   # a connection string: the default container
            from .storage import BlobStorage

            storage = BlobStorage(storage, "azureml")
        self.storage = storage
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(10, 2 * max_workers),
                                  max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self._session = session
        self._swagger: dict | None = None
        self._swagger_missing = False
        self._swagger_lock = threading.Lock()
        root = self.gateway_url or self.base_url
        self._root = f"{root}/workspaces/{quote(workspace, safe='')}/services/{quote(service, safe='')}"

    # -- alternate constructors ----------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> "WebService":
        """Build from environment variables.

        ``AZML_WORKSPACE``, ``AZML_SERVICE``, ``AZML_API_KEY``, ``AZML_BASE_URL`` or
        ``AZML_REGION``, and optionally ``AZML_GATEWAY_URL`` + ``AZML_SUBSCRIPTION_KEY``
        (then requests go through the gateway and the API key is not sent) and
        ``AZML_STORAGE_CONNECTION_STRING`` + ``AZML_STORAGE_CONTAINER`` (default storage
        for batch jobs). *options* go to the constructor.

        >>> env = {"AZML_WORKSPACE": "ws", "AZML_SERVICE": "svc", "AZML_API_KEY": "k",
        ...        "AZML_REGION": "asiasoutheast"}
        >>> WebService.from_env(env).base_url
        'https://asiasoutheast.services.azureml.net'
        """
        env = os.environ if environ is None else environ
        info = {k[len("AZML_"):].lower(): env[k] for k in _ENV if env.get(k)}
        missing = [f"AZML_{k.upper()}" for k in ("workspace", "service") if k not in info]
        if missing:
            raise ConfigurationError(f"environment variables not set: {', '.join(missing)}")
        return cls.from_info(info, **options)

    @classmethod
    def from_info(cls, info: Mapping[str, Any] | str | os.PathLike, *, gateway: bool | None = None,
                  **options: Any) -> "WebService":
        """Build from the JSON line ``azml-nb serve`` prints (a dict, that JSON text, or a file holding it).

        Keys: ``workspace``, ``service``, ``api_key``, ``base_url`` (or ``region``), and
        optionally ``gateway_url``, ``subscription_key``, ``storage_connection_string``,
        ``storage_container``. With ``gateway=None`` the gateway is used when the info
        names one with a subscription key; ``False`` calls the service directly, ``True``
        insists on the gateway. Through the gateway the API key is not sent.

        >>> WebService.from_info('{"workspace": "ws", "service": "svc", "api_key": "k", '
        ...                      '"base_url": "http://127.0.0.1:8080"}').base_url
        'http://127.0.0.1:8080'
        """
        info = _load_info(info)
        use_gateway = gateway
        if use_gateway is None:
            use_gateway = bool(info.get("gateway_url") and info.get("subscription_key"))
        if use_gateway and not info.get("gateway_url"):
            raise ConfigurationError("gateway=True but the info has no gateway_url")
        missing = [k for k in ("workspace", "service") if not info.get(k)]
        if missing:
            raise ConfigurationError(f"info lacks {', '.join(missing)}")
        owns_storage = "storage" not in options and bool(info.get("storage_connection_string"))
        if owns_storage:
            from .storage import BlobStorage

            options["storage"] = BlobStorage(info["storage_connection_string"],
                                             info.get("storage_container") or "azureml")
        kwargs: dict[str, Any] = {"base_url": info.get("base_url") or None,
                                  "region": None if info.get("base_url") else info.get("region")}
        if use_gateway:
            kwargs.update(gateway_url=info["gateway_url"],
                          subscription_key=info.get("subscription_key"))
            api_key = None
        else:
            api_key = info.get("api_key")
        kwargs.update(options)
        svc = cls(info["workspace"], info["service"], api_key, **kwargs)
        svc._owns_storage = owns_storage
        return svc

    # -- facts ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where requests go: the gateway URL when there is one, else the base URL."""
        return self.gateway_url or self.base_url  # type: ignore[return-value]

    def execute_url(self, *, format: str = "classic", details: bool = True) -> str:
        """The RRS URL for *format* (``"classic"`` or ``"swagger"``).

        ``details`` is always spelled out (``details=false`` too): an APIM operation whose
        URL template names it, as the seed's RRS Execute does, answers 404 without it.
        """
        url = f"{self._root}/execute?api-version={API_VERSION}"
        if format == "swagger":
            url += "&format=swagger"
        return url + ("&details=true" if details else "&details=false")

    def jobs_url(self, job_id: str | None = None, suffix: str = "") -> str:
        """The BES URL of the job list, or of one job (plus ``/start`` etc.)."""
        path = "/jobs" if job_id is None else f"/jobs/{quote(job_id, safe='')}{suffix}"
        return f"{self._root}{path}?api-version={API_VERSION}"

    @property
    def secrets(self) -> list[str]:
        """Every secret this client knows (keys, storage keys), for redaction."""
        found = [self._api_key, self._subscription_key]
        found += getattr(self.storage, "secrets", [])
        return [s for s in found if s]

    def __repr__(self) -> str:
        parts = [f"workspace={self.workspace!r}", f"service={self.service!r}", f"url={self.url!r}"]
        if self._api_key:
            parts.append("api_key='***'")
        if self._subscription_key:
            parts.append("subscription_key='***'")
        return f"WebService({', '.join(parts)})"

    def close(self) -> None:
        """Close the session and the blob storage client, those of them this client made."""
        if self._owns_session:
            self._session.close()
        if self._owns_storage and hasattr(self.storage, "close"):
            self.storage.close()

    def __enter__(self) -> "WebService":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ----------------------------------------------------------------------------

    def _headers(self, *, json_body: bool) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if json_body:
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if self.gateway_url and self._subscription_key:
            headers["Ocp-Apim-Subscription-Key"] = self._subscription_key
        return headers

    def _send(self, method: str, url: str, *, body: bytes | None = None, auth: bool = True,
              timeout: Any = None, retry: bool = True, idempotent: bool = True,
              cancel: threading.Event | None = None,
              secrets: Sequence[str] = (), what: str = "request") -> requests.Response:
        """Send one request, retrying what is worth retrying; return a 2xx response or raise.

        Every transport failure and error answer becomes an :mod:`azml_nb.errors`
        exception whose text has all known secrets replaced by ``***``. A request that is
        not *idempotent* (one that creates a batch job) is sent again only when it surely
        did not reach the service or was refused unprocessed, so a retry never leaves a
        second job behind.
        """
        hide = [*self.secrets, *secrets]
        headers = self._headers(json_body=body is not None) if auth else {"Accept": "*/*"}
        shown_url = redact(url.split("?", 1)[0] if not auth else url, hide)
        policy = self.retry
        started = time.monotonic()
        attempt = 0
        while True:
            if cancel is not None and cancel.is_set():
                raise _Cancelled()
            cause: BaseException | None = None
            unsent = False
            try:
                resp = self._session.request(method, url, data=body, headers=headers,
                                             timeout=timeout or self.timeout)
            except _TRANSPORT_ERRORS as err:  # refused, reset, cut off mid-answer, timed out
                kind = "Timeout" if isinstance(err, requests.Timeout) else "ConnectionError"
                reason = str(err.args[0] if err.args else err)
                reason = reason.rsplit(": ", 1)[-1].strip("()'\" ")[:160]  # urllib3 nests; keep the end
                error: ServiceError = ServiceError(
                    redact(f"{what} to {shown_url} failed: {type(err).__name__} ({reason})", hide),
                    code=kind)
                cause = _safe_cause(err, hide)
                unsent = _never_sent(err)
            except requests.RequestException as err:  # invalid URL, too many redirects, ...
                raise ServiceError(redact(f"{what} to {shown_url} failed: {err}", hide),
                                   code=type(err).__name__) from _safe_cause(err, hide)
            else:
                if resp.status_code < 400:
                    return resp
                error = _error_from_response(resp, hide)
            if idempotent:
                retriable = error.status_code is None or error.status_code in RETRY_STATUSES
            else:
                retriable = unsent if error.status_code is None else error.status_code in REFUSED_STATUSES
            if not retry or not retriable or attempt >= policy.retries:
                raise error from cause
            delay = policy.delay(attempt, error.retry_after)
            if time.monotonic() - started + delay > policy.deadline:
                log.info("%s: giving up after %d tries (deadline %.0f s)", what, attempt + 1,
                         policy.deadline)
                raise error from cause
            log.info("%s got %s%s; retry %d/%d in %.2f s", what, error.status_code or error.code,
                     "" if error.retry_after is None else f" (Retry-After {error.retry_after:g} s)",
                     attempt + 1, policy.retries, delay)
            if cancel is not None:
                if cancel.wait(delay):
                    raise _Cancelled()
            else:
                time.sleep(delay)
            attempt += 1

    # -- schema --------------------------------------------------------------------------

    def swagger(self, *, refresh: bool = False, timeout: Any = None) -> dict:
        """The service's Swagger 2.0 document (``.../swagger.json``), fetched once and cached.

        Raises :class:`~azml_nb.errors.NotFoundError` when the service (or a gateway in
        front of it) does not publish one.
        """
        with self._swagger_lock:
            if self._swagger is None or refresh:
                resp = self._send("GET", f"{self._root}/swagger.json", timeout=timeout,
                                  what="swagger.json")
                try:
                    self._swagger = resp.json()
                except ValueError as err:
                    raise ServiceError("swagger.json is not JSON", status_code=resp.status_code,
                                       body=redact(resp.text[:2000], self.secrets)) from err
            return self._swagger

    def schema(self) -> dict:
        """Input, output and global-parameter columns from :meth:`swagger`.

        Returns
        -------
        dict
            ``{"inputs": {name: {column: {"type": ..., "format": ...}}},
            "outputs": {...}, "global_parameters": {name: {...}}}``; dicts keep the
            service's column order.
        """
        return _schema_from_swagger(self.swagger())

    def _schema_or_none(self) -> dict | None:
        if self._swagger_missing:
            return None
        try:
            return self.schema()
        except NotFoundError:
            self._swagger_missing = True
            log.info("%s publishes no swagger.json; sending without a schema check", self.service)
            return None

    # -- RRS -----------------------------------------------------------------------------

    def score(self, data: pd.DataFrame | Mapping[str, pd.DataFrame], *, format: str = "classic",
              details: bool = True, global_parameters: Mapping[str, Any] | None = None,
              input_name: str | None = None, batch_input: str | None = None,
              batch_size: int | None = None, max_workers: int | None = None,
              max_request_bytes: int | None = None, check_schema: bool = True,
              numbers_as_strings: bool = False, errors: str = "raise", progress: bool = True,
              timeout: Any = None) -> Any:
        """Score a DataFrame (or several inputs) with the request-response service.

        The frame is cut into batches of at most *batch_size* rows whose encoded body stays
        under *max_request_bytes*, the batches are sent *max_workers* at a time, and the
        typed results are put back together in the input's order and with its index.

        Parameters
        ----------
        data : DataFrame or dict of DataFrame
            One input, or ``{input_name: frame}`` for several.
        format : {"classic", "swagger"}
            Wire format: ``ColumnNames``/``Values`` tables, or row records.
        details : bool
            Ask for ``ColumnTypes`` (``details=true``), which types the result.
        global_parameters : dict, optional
            Sent as ``GlobalParameters``.
        input_name : str, optional
            Name of a single input (default: the service's only input, else ``"input1"``).
        batch_input : str, optional
            With several inputs, the one to cut into batches (the others go whole with every
            batch). Without it several inputs go in one request.
        batch_size, max_workers, max_request_bytes : int, optional
            Override the client's defaults for this call.
        check_schema : bool
            Compare columns and types with swagger.json first (skipped when the service
            publishes none).
        numbers_as_strings : bool
            Send numbers as strings, as Studio's own samples do.
        errors : {"raise", "collect"}
            ``"raise"``: the first failed batch raises (with its rows); ``"collect"``: return a
            :class:`ScoreResult` with every batch that succeeded and the failures.
        progress : bool
            Show a ``tqdm.auto`` bar (notebook widget or text on stderr).
        timeout : float or (float, float), optional
            Per-request connect/read time-outs for this call.

        Returns
        -------
        DataFrame, dict of DataFrame, or ScoreResult
            One output gives a DataFrame, several a dict keyed by output name;
            ``errors="collect"`` wraps either in a :class:`ScoreResult`.

        Raises
        ------
        SchemaError
            The frame does not match the service's input schema.
        PayloadError
            A single row is larger than *max_request_bytes*, or an option is invalid.
        ServiceError
            (and its subclasses) a batch failed; ``err.rows`` says which input rows it held.

        Examples
        --------
        >>> svc.score(pd.DataFrame({"Col1": [5], "Col2": ["This is a good day"]}))  # doctest: +SKIP
                         Col2  Col2_HashingFeature.0  ...  Col2_HashingFeature.7
        0  This is a good day                      1  ...                      1
        """
        from tqdm.auto import tqdm

        from .payload import dumps, from_response, to_payload

        # 1. check options before any work
        if format not in ("classic", "swagger"):
            raise PayloadError(f"format must be 'classic' or 'swagger', got {format!r}")
        if errors not in ("raise", "collect"):
            raise PayloadError(f"errors must be 'raise' or 'collect', got {errors!r}")
        batch_size = self.batch_size if batch_size is None else batch_size
        max_workers = self.max_workers if max_workers is None else max_workers
        limit = self.max_request_bytes if max_request_bytes is None else max_request_bytes
        if batch_size < 1 or max_workers < 1:
            raise PayloadError(f"batch_size and max_workers must be >= 1, got {batch_size}, {max_workers}")

        # 2. name the inputs, check them against the service's schema
        schema = self._schema_or_none() if check_schema else None
        swagger_doc = self._swagger  # types swagger-format answers; None when never fetched
        single = isinstance(data, pd.DataFrame)
        if single:
            if input_name is None:
                names = list(schema["inputs"]) if schema else []
                input_name = names[0] if len(names) == 1 else "input1"
            inputs = {input_name: data}
        elif isinstance(data, Mapping) and data and all(isinstance(v, pd.DataFrame) for v in data.values()):
            inputs = dict(data)
        else:
            raise PayloadError("data must be a DataFrame or a non-empty {input_name: DataFrame} dict, "
                               f"got {type(data).__name__}")
        if schema:
            inputs = {name: _check_frame(name, frame, schema["inputs"]) for name, frame in inputs.items()}
        if batch_input is None and len(inputs) == 1:
            batch_input = next(iter(inputs))
        if batch_input is not None and batch_input not in inputs:
            raise PayloadError(f"batch_input {batch_input!r} is not one of the inputs {list(inputs)}")
        n = len(inputs[batch_input]) if batch_input else 1

        # 3. encode-and-send one range of rows; halve it while its body is too large
        url = self.execute_url(format=format, details=details)
        stop_all = threading.Event()

        def encode(start: int, stop: int) -> bytes:
            parts = {k: (v.iloc[start:stop] if k == batch_input else v) for k, v in inputs.items()}
            return dumps(to_payload(parts, format=format, global_parameters=global_parameters,
                                    numbers_as_strings=numbers_as_strings))

        def run(start: int, stop: int) -> list[_Piece]:
            if stop_all.is_set():
                raise _Cancelled()
            body = encode(start, stop)
            if len(body) > limit:
                if batch_input is None or stop - start <= 1:
                    where = f"row {start} of input {batch_input!r}" if batch_input else "the inputs"
                    raise PayloadError(f"{where} alone encodes to {len(body):,} bytes, over "
                                       f"max_request_bytes={limit:,}", row=start)
                mid = (start + stop) // 2
                log.debug("rows %d..%d encode to %d bytes; splitting", start, stop - 1, len(body))
                return run(start, mid) + run(mid, stop)
            rows = range(start, stop) if batch_input else None
            try:
                resp = self._send("POST", url, body=body, timeout=timeout, cancel=stop_all,
                                  what=f"scoring rows {start}..{stop - 1}")
                out = from_response(resp.content, schema=swagger_doc)
            except ServiceError as err:
                err.rows = rows
                return [_Piece(start, stop, error=err)]
            except PayloadError as err:  # a 2xx answer we cannot read
                bad = ServiceError(f"unreadable answer: {err}", status_code=resp.status_code,
                                   code="InvalidResponse", rows=rows,
                                   body=redact(resp.text[:2000], self.secrets))
                bad.__cause__ = err
                return [_Piece(start, stop, error=bad)]
            return [_Piece(start, stop, outputs=out if isinstance(out, dict) else {None: out})]

        # 4. plan batches (rows, then size estimated from a sample), run them concurrently
        ranges = self._plan(n, batch_size, limit, encode if batch_input else None)
        pieces: list[list[_Piece] | None] = [None] * len(ranges)
        bar = tqdm(total=n, unit="rows", desc=f"scoring {self.service}", disable=not progress,
                   dynamic_ncols=True, leave=progress)
        first_error: ServiceError | None = None
        try:
            if len(ranges) == 1 or max_workers == 1:
                for i, (a, b) in enumerate(ranges):
                    pieces[i] = run(a, b)
                    bar.update(b - a)
                    first_error = first_error or _first_error(pieces[i])
                    if first_error is not None and errors == "raise":
                        break
            else:
                with cf.ThreadPoolExecutor(min(max_workers, len(ranges)),
                                           thread_name_prefix="azml_nb-score") as pool:
                    futures = {pool.submit(run, a, b): i for i, (a, b) in enumerate(ranges)}
                    try:
                        for fut in cf.as_completed(futures):
                            i = futures[fut]
                            try:
                                pieces[i] = fut.result()
                            except _Cancelled:
                                continue
                            bar.update(ranges[i][1] - ranges[i][0])
                            first_error = first_error or _first_error(pieces[i])
                            if first_error is not None and errors == "raise":
                                break
                    finally:  # a failure, Ctrl-C or a PayloadError: stop the other workers
                        stop_all.set()
                        for fut in futures:
                            fut.cancel()
        finally:
            bar.close()
        if first_error is not None and errors == "raise":
            raise first_error

        # 5. reassemble in input order, with the input's index
        done = [p for group in pieces if group for p in group]
        failures = [p.error for p in done if p.error is not None]
        index = inputs[batch_input].index if batch_input else None
        output = _assemble([p for p in done if p.error is None], index)
        if errors == "collect":
            if failures:
                log.warning("%d of %d batches failed (%d rows); see ScoreResult.failures",
                            len(failures), len(done), sum(len(e.rows or ()) for e in failures))
            return ScoreResult(output, failures, input=data if not single else inputs[batch_input],
                               split_input=batch_input)
        return output

    def _plan(self, n: int, batch_size: int, limit: int,
              encode: Callable[[int, int], bytes] | None) -> list[tuple[int, int]]:
        """Row ranges of about equal size, each at most *batch_size* rows and (by a sample's
        estimate) under *limit* bytes; ``run`` still halves any range that comes out larger."""
        if n == 0 or encode is None:
            return [(0, n)] if encode is not None else [(0, 1)]
        if n > batch_size or n > 64:
            k = min(n, 256)
            overhead = len(encode(0, 0))
            per_row = max(1.0, (len(encode(0, k)) - overhead) / k)
            fit = int((limit * 0.85 - overhead) // per_row)
            batch_size = max(1, min(batch_size, fit))
        count = math.ceil(n / batch_size)
        bounds = [round(i * n / count) for i in range(count + 1)]
        return list(zip(bounds[:-1], bounds[1:]))

    # -- BES -----------------------------------------------------------------------------

    def submit_batch(self, data: Any, *, storage: Any = None,
                     global_parameters: Mapping[str, Any] | None = None,
                     outputs: Sequence[str] | None = None, input_name: str = "input1",
                     cleanup: bool = False, start: bool = True, timeout: Any = None) -> BatchJob:
        """Upload the input(s) as CSV, submit a batch (BES) job, start it, and return its poller.

        Parameters
        ----------
        data : DataFrame, path, or dict of those
            A DataFrame (written as CSV with a header row) or the path of a CSV file that has
            one; ``{input_name: ...}`` for several inputs.
        storage : BlobStorage or str, optional
            Where to put the blobs: a :class:`~azml_nb.storage.BlobStorage` or a connection
            string (container ``azureml``). Default: the client's ``storage``.
        global_parameters : dict, optional
            Sent as ``GlobalParameters``.
        outputs : list of str, optional
            Output names to ask for (default: the service's outputs from swagger.json, else
            ``["output1"]``); each is written to ``{prefix}/{name}.csv``.
        cleanup : bool
            Delete the uploaded and output blobs once :meth:`BatchJob.result` has read them
            (or on :meth:`BatchJob.delete`).
        start : bool
            Start the job right away (default) or leave it NotStarted (``job.start()``).

        Examples
        --------
        >>> job = svc.submit_batch(df, storage=store)     # doctest: +SKIP
        >>> job.wait(); out = job.result()                # doctest: +SKIP
        """
        from .bes import submit

        return submit(self, data, storage=storage, global_parameters=global_parameters,
                      outputs=outputs, input_name=input_name, cleanup=cleanup, start=start,
                      timeout=timeout)

    def job(self, job_id: str, *, storage: Any = None) -> BatchJob:
        """Re-attach to an existing batch job by its id (no network call)."""
        return BatchJob(self, job_id, storage=storage if storage is not None else self.storage)


# --- helpers -------------------------------------------------------------------------------

def _load_info(info: Mapping[str, Any] | str | os.PathLike) -> dict:
    if isinstance(info, Mapping):
        return dict(info)
    text = os.fspath(info)
    if isinstance(text, str) and text.lstrip().startswith("{"):
        source = "the given JSON text"
    else:
        source = f"file {text!r}"
        try:
            with open(text, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as err:
            raise ConfigurationError(f"cannot read service info from {source}: {err.strerror}") from err
    # `azml-nb serve` prints the info as its first line; take the first JSON object line
    for line in str(text).splitlines() or [str(text)]:
        if line.strip().startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    try:
        value = json.loads(text)
    except ValueError:  # the text holds keys: do not chain a decoder error quoting it
        raise ConfigurationError(f"service info in {source} is not a JSON object") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"service info in {source} is not a JSON object")
    return value


def _never_sent(err: BaseException) -> bool:
    """True when a transport error happened before the request could reach the server."""
    if isinstance(err, requests.ConnectTimeout):
        return True
    reason = getattr(err.args[0], "reason", None) if err.args else None
    return isinstance(reason, NewConnectionError)


def _safe_cause(err: BaseException, secrets: Sequence[str]) -> BaseException:
    """*err*, or a stand-in of the same family without secrets (URLs can hold SAS tokens)."""
    text = str(err)
    if redact(text, secrets) == text:
        return err
    stand_in = (requests.ConnectionError if isinstance(err, requests.ConnectionError)
                else requests.RequestException)
    return stand_in(redact(text, secrets))


def _error_from_response(resp: requests.Response, secrets: Sequence[str]) -> ServiceError:
    """An :class:`~azml_nb.errors.ServiceError` (subclass by status) from an error answer.

    Reads AzureML's ``{"error": {"code", "message", "details"}}`` and APIM's
    ``{"statusCode", "message"}``; any other body falls back to its text.
    """
    status = resp.status_code
    text = redact(resp.text or "", secrets)
    code = message = None
    details: list[dict] = []
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        code = inner.get("code") or inner.get("Code")
        message = inner.get("message") or inner.get("Message")
        raw = inner.get("details") or inner.get("Details") or []
        for d in raw if isinstance(raw, list) else [raw]:
            details.append({k: str(v) for k, v in d.items()} if isinstance(d, dict)
                           else {"code": "", "message": str(d)})
    if not message:
        message = text.strip()[:500] or resp.reason or f"HTTP {status}"
    request_id = next((resp.headers[h] for h in _REQUEST_ID_HEADERS if h in resp.headers), None)
    cls = {401: AuthenticationError, 403: AuthenticationError, 404: NotFoundError,
           408: ThrottledError, 429: ThrottledError, 503: ThrottledError,
           504: ThrottledError}.get(status, ServiceError)
    return cls(str(message), status_code=status, code=str(code) if code is not None else None,
               details=details, request_id=request_id,
               retry_after=_parse_retry_after(resp.headers.get("Retry-After")), body=text[:10_000])


def _first_error(pieces: list[_Piece] | None) -> ServiceError | None:
    return next((p.error for p in pieces or () if p.error is not None), None)


def _assemble(pieces: list[_Piece], index: pd.Index | None) -> Any:
    """Concatenate the outputs of the pieces (already in input order); give them the input's index."""
    names: list[Any] = []
    for p in pieces:
        for name in p.outputs or {}:
            if name not in names:
                names.append(name)
    result: dict[Any, pd.DataFrame] = {}
    for name in names:
        frames = []
        aligned = index is not None
        for p in pieces:
            out = (p.outputs or {}).get(name)
            if out is None:
                continue
            if aligned and len(out) == p.stop - p.start:
                out = out.set_axis(index[p.start:p.stop], axis=0)
            elif aligned:
                log.warning("output %s: the service answered %d rows for %d input rows; "
                            "the result keeps a fresh 0..n-1 index", name, len(out), p.stop - p.start)
                aligned = False
            frames.append(out)
        joined = frames[0] if len(frames) == 1 else pd.concat(frames)
        if not aligned:
            joined = joined.reset_index(drop=True)
        result[name] = joined
    if not result:
        return pd.DataFrame()
    if list(result) == [None]:
        return result[None]
    return result


def _item_properties(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> dict:
    """Column specs of a Swagger array-of-items schema (following ``$ref``)."""
    def resolve(node: Any) -> Any:
        while isinstance(node, Mapping) and "$ref" in node:
            node = definitions.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
        return node

    node = resolve(schema)
    if isinstance(node, Mapping) and node.get("type") == "array":
        node = resolve(node.get("items", {}))
    props = node.get("properties", {}) if isinstance(node, Mapping) else {}
    return {col: {"type": spec.get("type", "string"), "format": spec.get("format")}
            for col, spec in props.items()}


def _schema_from_swagger(doc: Mapping[str, Any]) -> dict:
    defs = doc.get("definitions") or {}
    request = (defs.get("ExecutionRequest") or {}).get("properties") or {}
    inputs_node = request.get("Inputs") or {}
    inputs = {name: _item_properties(spec, defs)
              for name, spec in (inputs_node.get("properties") or {}).items()}
    outputs: dict[str, dict] = {}
    for key in defs:
        m = re.fullmatch(r"(.+)Item", key)
        if m and m.group(1) not in inputs and key not in ("ExecutionRequest",):
            if not inputs_node and not m.group(1).lower().startswith("output"):
                inputs[m.group(1)] = _item_properties(defs[key], defs)
            elif m.group(1).lower().startswith("output"):
                outputs[m.group(1)] = _item_properties(defs[key], defs)
    gp_node = request.get("GlobalParameters") or {}
    while isinstance(gp_node, Mapping) and "$ref" in gp_node:
        gp_node = defs.get(str(gp_node["$ref"]).rsplit("/", 1)[-1], {})
    global_parameters = {k: {"type": v.get("type", "string"), "format": v.get("format")}
                         for k, v in (gp_node.get("properties") or {}).items()}
    return {"inputs": inputs, "outputs": outputs, "global_parameters": global_parameters}


def _type_problem(series: pd.Series, spec: Mapping[str, Any]) -> str | None:
    """Why *series* cannot be sent as the swagger type *spec*, or None when it can."""
    kind = series.dtype.kind
    expected = spec.get("type", "string")
    if expected in ("string", None) or kind == "O" and series.isna().all():
        return None
    if expected in ("integer", "number"):
        if kind in "iu" or (kind == "f" and expected == "number"):
            return None
        if kind == "f":
            vals = series.dropna()
            bad = vals[vals != vals.round()]
            return None if bad.empty else f"non-integral value {bad.iloc[0]!r} at row {series.index.get_loc(bad.index[0])}"
        if kind in "OUS" or isinstance(series.dtype, pd.StringDtype):
            vals = series.dropna()
            parsed = pd.to_numeric(vals, errors="coerce")
            bad = vals[parsed.isna()]
            if bad.empty:
                return None
            return f"non-numeric value {str(bad.iloc[0])[:40]!r} at row {series.index.get_loc(bad.index[0])}"
        return f"{series.dtype} values"
    if expected == "boolean":
        if kind == "b":
            return None
        vals = series.dropna()
        if vals.isin([True, False]).all():
            return None
        return f"{series.dtype} values"
    return None


def _check_frame(name: str, frame: pd.DataFrame, inputs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """*frame* with its columns in the schema's order, or a SchemaError naming what differs."""
    if name not in inputs:
        if inputs:
            raise SchemaError(f"the service has no input {name!r}; its inputs are {list(inputs)}",
                              expected=list(inputs), given=[name])
        return frame
    expected = inputs[name]
    if not expected:
        return frame

    def show(spec: Mapping[str, Any]) -> str:
        return spec["type"] + (f"/{spec['format']}" if spec.get("format") else "")

    given = [str(c) for c in frame.columns]
    missing = [c for c in expected if c not in given]
    extra = [c for c in given if c not in expected]
    if missing or extra:
        lines = [f"input {name!r}: the frame's columns do not match the service's schema",
                 "  expected: " + ", ".join(f"{c} ({show(s)})" for c, s in expected.items()),
                 "  given:    " + ", ".join(f"{c} ({frame[c].dtype})" for c in frame.columns)]
        if missing:
            lines.append(f"  missing:  {', '.join(missing)}")
        if extra:
            lines.append(f"  unexpected: {', '.join(extra)} (select the expected columns: "
                         f"df[{list(expected)!r}])")
        raise SchemaError("\n".join(lines), expected=list(expected), given=given,
                          column=(missing or extra)[0])
    for col, spec in expected.items():
        problem = _type_problem(frame[col], spec)
        if problem:
            raise SchemaError(f"input {name!r}, column {col!r}: expected {show(spec)}, "
                              f"given {frame[col].dtype} ({problem})",
                              expected=[f"{col} ({show(spec)})"],
                              given=[f"{col} ({frame[col].dtype})"], column=col)
    if given != list(expected):
        frame = frame[list(expected)]
    return frame
