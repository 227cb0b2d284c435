"""``CredentialsForm``: where a notebook user types (or finds pre-filled) what a client needs."""
from __future__ import annotations

import html
import logging
import os
import re
from typing import Any, Mapping
from urllib.parse import urlsplit

import ipywidgets as w
import traitlets

from ..errors import ConfigurationError
from ._common import FIELD_WIDTH, LABEL_WIDTH, SecretField, field_row, set_message, show, show_error, text

log = logging.getLogger("azml_nb.widgets")

__all__ = ["CredentialsForm", "REGIONS"]

#: Studio (classic) regions offered by the endpoint dropdown; '' means "custom base URL"
REGIONS = {
    "ussouthcentral": "South Central US",
    "europewest": "West Europe",
    "asiasoutheast": "Southeast Asia",
    "japaneast": "Japan East",
    "westcentralus": "West Central US",
}
CUSTOM = ""

_CONTAINER = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_ID = re.compile(r"^[^\s/?#]+$")


def _url_problem(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "expected an http:// or https:// URL with a host"
    if parts.query or parts.fragment:
        return "expected a URL without ?query or #fragment"
    return ""


def _key_problem(key: str) -> tuple[str, str]:
    """(level, message) about a key's shape, never quoting the key."""
    if key.lower().startswith("bearer "):
        return "error", "paste the key without the 'Bearer' prefix"
    if any(c.isspace() for c in key) or key[:1] in "'\"" or key[-1:] in "'\"":
        return "error", "the key holds spaces or quotes: paste the key alone"
    if len(key) < 16:
        return "warning", f"a short key ({len(key)} characters): is it complete?"
    return "ok", "set"


def _connection_string_problem(value: str) -> str:
    pairs = dict(part.split("=", 1) for part in value.split(";") if "=" in part)
    if pairs.get("UseDevelopmentStorage", "").lower() == "true":
        return ""
    if not pairs:
        return "expected 'Key=value;...' pairs (AccountName=...;AccountKey=...)"
    if "AccountKey" in pairs and "AccountName" not in pairs:
        return "AccountName is missing"
    if not ({"AccountKey", "SharedAccessSignature"} & pairs.keys()):
        return "expected an AccountKey or a SharedAccessSignature"
    return ""


class CredentialsForm(w.VBox):
    """A form for the web service's credentials, the gateway and the storage account.

    Fields: workspace, service, API key (masked), endpoint (a Studio region or a custom
    base URL), a "through API Management" switch with the gateway URL and subscription key
    (masked), the storage connection string (masked) and container. Each field shows an
    inline message when it is empty, malformed or oddly shaped. "Test connection" fetches
    the service's swagger.json, scores its example request (which checks the keys) and
    reports success or the service's error.

    Secrets are held in the kernel only (see :class:`~azml_nb.widgets._common.SecretField`):
    the form's widget state, its repr and its output never contain them.

    Parameters
    ----------
    info : mapping, optional
        Pre-fill from the offline stack's ``info()`` (the JSON line ``azml-nb serve``
        prints): base_url, workspace, service, api_key, storage_connection_string,
        storage_container, gateway_url, subscription_key.
    env : bool or mapping
        Pre-fill from ``AZML_*`` environment variables (or this mapping) for the fields
        *info* leaves empty. Default True.
    via_gateway : bool, optional
        Start with the "through API Management" switch on; default: on when a gateway URL
        and subscription key are known and no API key is.

    Examples
    --------
    >>> form = CredentialsForm(env=False)
    >>> form.workspace.value, form.service_name.value = "ws", "svc"
    >>> form.api_key.value = "x" * 40
    >>> form.region.value = "europewest"
    >>> form.problems()
    {}
    >>> form            # doctest: +ELLIPSIS
    CredentialsForm(workspace='ws', service='svc', api_key=set, endpoint='https://europewest...')
    """

    valid = traitlets.Bool(False, help="no field has an error")

    def __init__(self, *, info: Mapping[str, Any] | None = None, env: bool | Mapping[str, str] = True,
                 via_gateway: bool | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.workspace = text("Workspace", placeholder="workspace id")
        self.service_name = text("Service", placeholder="service id")
        self.api_key = SecretField("API key", "the service's API key (masked)")
        self.region = w.Dropdown(
            description="Endpoint",
            options=[(f"{label} ({name})", name) for name, label in REGIONS.items()]
            + [("Custom base URL", CUSTOM)],
            value="ussouthcentral", style={"description_width": LABEL_WIDTH},
            layout=w.Layout(width=FIELD_WIDTH))
        self.base_url = text("Base URL", placeholder="http://127.0.0.1:PORT")
        self.via_gateway = w.Checkbox(description="through API Management", indent=False,
                                      layout=w.Layout(margin=f"2px 0 2px {LABEL_WIDTH}"))
        self.gateway_url = text("Gateway URL", placeholder="https://NAME.azure-api.net/azureml-demo")
        self.subscription_key = SecretField("Subscription key", "Ocp-Apim-Subscription-Key (masked)")
        self.storage_connection_string = SecretField(
            "Storage connection string", "for batch jobs (masked)")
        self.storage_container = text("Container", placeholder="container name (for batch jobs)")
        self.test_button = w.Button(description="Test connection", icon="plug",
                                    tooltip="fetch the service's swagger.json and score its example",
                                    layout=w.Layout(margin=f"6px 0 2px {LABEL_WIDTH}", width="14em"))
        self.output = w.Output()

        self._messages = {name: w.HTML() for name in (
            "workspace", "service", "api_key", "base_url", "gateway_url", "subscription_key",
            "storage_connection_string", "storage_container")}
        m = self._messages
        self._gateway_box = w.VBox([field_row(self.gateway_url, m["gateway_url"]),
                                    field_row(self.subscription_key.widget, m["subscription_key"])])
        self._base_url_row = field_row(self.base_url, m["base_url"])
        self.children = [
            w.HTML("<b>Web service</b>"),
            field_row(self.workspace, m["workspace"]),
            field_row(self.service_name, m["service"]),
            field_row(self.api_key.widget, m["api_key"]),
            self.region,
            self._base_url_row,
            self.via_gateway,
            self._gateway_box,
            w.HTML("<b>Storage</b> (batch jobs)"),
            field_row(self.storage_connection_string.widget, m["storage_connection_string"]),
            field_row(self.storage_container, m["storage_container"]),
            self.test_button,
            self.output,
        ]

        for field in (self.workspace, self.service_name, self.region, self.base_url,
                      self.via_gateway, self.gateway_url, self.storage_container):
            field.observe(self._validate, names="value")
        for secret in (self.api_key, self.subscription_key, self.storage_connection_string):
            secret.on_change(self._validate)
        self.test_button.on_click(self._on_test)

        settings = dict(self._from_env(env)) if env else {}
        settings.update({k: v for k, v in (info or {}).items() if v not in (None, "")})
        self.fill(settings, via_gateway=via_gateway)

    # --- filling ------------------------------------------------------------------------

    @staticmethod
    def _from_env(env: bool | Mapping[str, str]) -> dict[str, str]:
        environ = os.environ if env is True else env
        names = ("base_url", "region", "workspace", "service", "api_key", "gateway_url",
                 "subscription_key", "storage_connection_string", "storage_container")
        return {name: environ[f"AZML_{name.upper()}"] for name in names
                if environ.get(f"AZML_{name.upper()}")}

    @classmethod
    def from_info(cls, info: Mapping[str, Any], **kwargs: Any) -> "CredentialsForm":
        """A form pre-filled from an offline stack's ``info()`` (or the serve JSON line)."""
        return cls(info=info, env=False, **kwargs)

    def fill(self, settings: Mapping[str, Any], *, via_gateway: bool | None = None) -> None:
        """Set fields from a mapping with the ``info()`` keys (missing keys left as they are)."""
        s = settings
        with self.hold_trait_notifications():
            if s.get("workspace"):
                self.workspace.value = str(s["workspace"])
            if s.get("service"):
                self.service_name.value = str(s["service"])
            if s.get("api_key"):
                self.api_key.value = str(s["api_key"])
            if s.get("base_url"):
                self.region.value = CUSTOM
                self.base_url.value = str(s["base_url"]).rstrip("/")
            elif s.get("region") in REGIONS:
                self.region.value = s["region"]
            if s.get("gateway_url"):
                self.gateway_url.value = str(s["gateway_url"]).rstrip("/")
            if s.get("subscription_key"):
                self.subscription_key.value = str(s["subscription_key"])
            if s.get("storage_connection_string"):
                self.storage_connection_string.value = str(s["storage_connection_string"])
            if s.get("storage_container"):
                self.storage_container.value = str(s["storage_container"])
            if via_gateway is None:
                via_gateway = bool(self.gateway_url.value and self.subscription_key.is_set
                                   and not self.api_key.is_set)
            self.via_gateway.value = via_gateway
        self._validate()

    # --- validation ---------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The base URL the service is called at (before any gateway)."""
        if self.region.value == CUSTOM:
            return self.base_url.value.strip().rstrip("/")
        return f"https://{self.region.value}.services.azureml.net"

    def problems(self) -> dict[str, str]:
        """Field name -> what is wrong with it; empty when the form can build a service."""
        found: dict[str, str] = {}
        for name, field in (("workspace", self.workspace), ("service", self.service_name)):
            value = field.value.strip()
            if not value:
                found[name] = "required"
            elif not _ID.match(value):
                found[name] = "no spaces, '/', '?' or '#' allowed"
        gateway = self.via_gateway.value
        if self.api_key.is_set:
            level, message = _key_problem(self.api_key.value)
            if level == "error":
                found["api_key"] = message
        elif not gateway:
            found["api_key"] = "required (unless calling through API Management)"
        if self.region.value == CUSTOM:
            problem = _url_problem(self.base_url.value.strip()) if self.base_url.value.strip() \
                else "required for a custom endpoint"
            if problem:
                found["base_url"] = problem
        if gateway:
            url = self.gateway_url.value.strip()
            problem = _url_problem(url) if url else "required through API Management"
            if problem:
                found["gateway_url"] = problem
            if not self.subscription_key.is_set:
                found["subscription_key"] = "required through API Management"
            else:
                level, message = _key_problem(self.subscription_key.value)
                if level == "error":
                    found["subscription_key"] = message
        if self.storage_connection_string.is_set:
            problem = _connection_string_problem(self.storage_connection_string.value)
            if problem:
                found["storage_connection_string"] = problem
            if not self.storage_container.value.strip():
                found["storage_container"] = "required with a connection string"
        if self.storage_container.value.strip() and not _CONTAINER.match(self.storage_container.value.strip()):
            found["storage_container"] = "3-63 lowercase letters, digits and single hyphens"
        return found

    def _validate(self, change: Any = None) -> None:
        found = self.problems()
        for name, message in self._messages.items():
            if name in found:
                set_message(message, found[name])
            elif name in ("api_key", "subscription_key") and getattr(self, name).is_set:
                level, text_ = _key_problem(getattr(self, name).value)
                set_message(message, text_, level=level)
            else:
                set_message(message, "")
        self._base_url_row.layout.display = None if self.region.value == CUSTOM else "none"
        self._gateway_box.layout.display = None if self.via_gateway.value else "none"
        self.valid = not found

    # --- results ------------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        return [self.api_key.value, self.subscription_key.value, self.storage_connection_string.value,
                *(_connection_string_secrets(self.storage_connection_string.value))]

    def service(self, **options: Any):
        """The :class:`azml_nb.WebService` these credentials describe.

        Raises
        ------
        azml_nb.errors.ConfigurationError
            When a field is missing or malformed (the message names each field).
        """
        found = self.problems()
        if found:
            raise ConfigurationError("the credentials form is incomplete: " + "; ".join(
                f"{name}: {message}" for name, message in found.items()))
        from ..service import WebService

        kwargs: dict[str, Any] = {"base_url": self.endpoint, "storage": self.storage()}
        if self.via_gateway.value:
            kwargs.update(gateway_url=self.gateway_url.value.strip().rstrip("/"),
                          subscription_key=self.subscription_key.value)
        kwargs.update(options)
        return WebService(self.workspace.value.strip(), self.service_name.value.strip(),
                          self.api_key.value or None, **kwargs)

    def storage(self):
        """The :class:`azml_nb.storage.BlobStorage` for batch jobs (None when not filled in)."""
        if not self.storage_connection_string.is_set:
            return None
        found = {k: v for k, v in self.problems().items() if k.startswith("storage")}
        if found:
            raise ConfigurationError("the storage fields are incomplete: " + "; ".join(
                f"{name}: {message}" for name, message in found.items()))
        from ..storage import BlobStorage

        return BlobStorage(self.storage_connection_string.value, self.storage_container.value.strip())

    def _on_test(self, button: w.Button | None = None) -> None:
        self.test_button.disabled = True
        try:
            svc = self.service()
            swagger = svc.swagger()
            checked = _score_example(svc, swagger)
        except Exception as err:  # shown in the form, logged, never dropped
            show_error(self.output, err, what="Test connection", secrets=self._secrets())
        else:
            info = swagger.get("info", {}) if isinstance(swagger, dict) else {}
            inputs = _item_columns(swagger, "input")
            outputs = _item_columns(swagger, "output")
            title = info.get("title") or self.service_name.value
            where = "through API Management" if self.via_gateway.value else "directly"
            key = ("keys accepted: the swagger example scored" if checked
                   else "keys not checked: swagger.json has no example request")
            plain = (f"Connected {where}: {title}\n"
                     f"inputs: {', '.join(inputs) or '?'}\noutputs: {len(outputs)} columns\n{key}")
            show(self.output,
                 f'<div style="color:#2a7d2e"><b>Connected</b> {html.escape(where)}: '
                 f"{html.escape(str(title))}</div>"
                 f"<div>inputs: <code>{html.escape(', '.join(inputs) or '?')}</code>; "
                 f"outputs: {len(outputs)} columns</div><div>{html.escape(key)}</div>", plain)
            log.info("test connection succeeded (%s)", where)
        finally:
            self.test_button.disabled = False

    def test_connection(self) -> None:
        """Press "Test connection" from code."""
        self.test_button.click()

    def __repr__(self) -> str:
        return (f"CredentialsForm(workspace={self.workspace.value!r}, service={self.service_name.value!r}, "
                f"api_key={'set' if self.api_key.is_set else 'unset'}, endpoint={self.endpoint!r}"
                + (f", gateway_url={self.gateway_url.value!r}, subscription_key="
                   f"{'set' if self.subscription_key.is_set else 'unset'}" if self.via_gateway.value else "")
                + ")")


def _score_example(svc: Any, swagger: Any) -> bool:
    """Score the example request of a swagger.json (checks the keys); False when it has none."""
    definitions = swagger.get("definitions", {}) if isinstance(swagger, dict) else {}
    example = (definitions.get("ExecutionRequest") or {}).get("example")
    if not isinstance(example, dict) or not example.get("Inputs"):
        return False
    from ..payload import from_payload

    svc.score(from_payload(example), global_parameters=example.get("GlobalParameters") or None,
              check_schema=False, progress=False)
    return True


def _connection_string_secrets(value: str) -> list[str]:
    pairs = dict(part.split("=", 1) for part in value.split(";") if "=" in part)
    return [pairs[k] for k in ("AccountKey", "SharedAccessSignature") if pairs.get(k)]


def _item_columns(swagger: Any, kind: str) -> list[str]:
    """Column names of the first ``{kind}...Item`` definition of a swagger.json."""
    definitions = swagger.get("definitions", {}) if isinstance(swagger, dict) else {}
    for name, definition in definitions.items():
        if name.startswith(kind) and name.endswith("Item"):
            return list(definition.get("properties", {}))
    return []
