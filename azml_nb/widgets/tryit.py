"""``TryIt``: the API Management developer portal's "Try it" console in a notebook."""
from __future__ import annotations

import html
import json
import logging
import re
from typing import Any, Mapping
from urllib.parse import quote

import ipywidgets as w
import requests
import traitlets

from ..apim import OPERATIONS, Operation
from ..errors import redact
from ._common import SecretField, set_message, show, show_error

log = logging.getLogger("azml_nb.widgets")

__all__ = ["TryIt", "mask", "pretty_json"]

_LABEL = "16em"
_STYLE = {"description_width": _LABEL}
_WIDTH = "44em"
_PARAM = re.compile(r"\{(\w+)\}")
#: body placeholder replaced by the storage connection string (a secret) when sending
STORAGE_PLACEHOLDER = "{{storage-connection-string}}"

_RRS_BODY = {"Inputs": {"input1": {"ColumnNames": ["Col2"], "Values": [["This is a good day"]]}},
             "GlobalParameters": {}}


def _bes_body(container: str) -> dict:
    return {"Inputs": {"input1": {"ConnectionString": STORAGE_PLACEHOLDER,
                                  "RelativeLocation": f"/{container}/input1.csv"}},
            "Outputs": {"output1": {"ConnectionString": STORAGE_PLACEHOLDER,
                                    "RelativeLocation": f"/{container}/output1.csv"}},
            "GlobalParameters": {}}


_PATTERNS = [
    (re.compile(r"(?i)\b(sig|subscription-key)=[^&\"'\s;]+"), r"\1=***"),
    (re.compile(r"(?i)\b(AccountKey|SharedAccessSignature)=[^;\"'\s]+"), r"\1=***"),
    (re.compile(r'(?i)("SasBlobToken"\s*:\s*")[^"]*(")'), r"\1***\2"),
    (re.compile(r"(?i)\b(Bearer)\s+[^\s\"']+"), r"\1 ***"),
]


def pretty_json(obj: Any, level: int = 0) -> str:
    """JSON indented by structure, with lists of plain values (a row of Values) on one line.

    >>> print(pretty_json({"Values": [["a", "1"], ["b", "2"]], "n": 1}))
    {
      "Values": [
        ["a", "1"],
        ["b", "2"]
      ],
      "n": 1
    }
    """
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(obj, dict) and obj:
        items = (f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {pretty_json(v, level + 1)}"
                 for k, v in obj.items())
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        return "[\n" + ",\n".join(f"{inner}{pretty_json(v, level + 1)}" for v in obj) + f"\n{pad}]"
    return json.dumps(obj, ensure_ascii=False)


def mask(text: str, secrets: Any = ()) -> str:
    """Mask known secrets and anything shaped like one (SAS signatures, account keys,
    bearer tokens, SasBlobToken values, subscription-key query parameters).

    >>> mask('{"SasBlobToken": "?sv=2024&sig=abc"} AccountKey=xyz==;', ["nothing"])
    '{"SasBlobToken": "***"} AccountKey=***;'
    """
    text = redact(text, secrets)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class TryIt(w.VBox):
    """Call one of the API's five operations the way the developer portal's "Try it" does.

    Choose the operation, fill its template parameters (workspace, service, api-version,
    details, job id), the headers (Content-Type; the subscription key goes in its own
    masked field, as does an optional backend API key for set-ups without a ``set-header``
    policy) and the body, press Send, and see the requested URL, the response status, the
    response headers and the body. Secrets are masked in everything shown.

    A BES Submit body may say ``{{storage-connection-string}}`` where the connection string
    goes: it is filled in from the masked storage field when sending, so the secret never
    sits in the body field. A successful BES Submit fills the job id field.

    Parameters
    ----------
    gateway_url : str
        The API's URL including its suffix, e.g. ``https://NAME.azure-api.net/azureml-demo``
        (or any base URL that serves the five operations, such as the service itself).
    subscription_key, api_key, storage_connection_string : str, optional
        Secrets; kept out of widget state.
    workspace, service, container : str
        Defaults of the template parameters and of the BES body.
    session : requests.Session, optional
    timeout : float
        Seconds to wait for an answer.

    Attributes
    ----------
    last : dict or None
        What the last Send showed (method, url, request_headers, status, reason,
        headers, body), masked.
    response : requests.Response or None
        The last response, for code (it stays in the kernel).
    """

    running = traitlets.Bool(False)

    def __init__(self, gateway_url: str, *, subscription_key: str | None = None, api_key: str | None = None,
                 storage_connection_string: str | None = None, workspace: str = "", service: str = "",
                 container: str = "azureml", session: requests.Session | None = None,
                 timeout: float = 60.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.gateway_url = gateway_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout
        self.container = container
        self.operations = {op.operation_id: op for op in OPERATIONS}
        self.operation = w.Dropdown(options=[(op.display_name, op.operation_id) for op in OPERATIONS],
                                    value="rrs-execute", description="Operation", style=_STYLE,
                                    layout=w.Layout(width="30em"))
        self.signature = w.HTML()
        defaults = {"workspace": workspace, "service": service, "apiversion": "2.0", "details": "true",
                    "jobid": ""}
        self.params: dict[str, w.Text] = {}
        for op in OPERATIONS:
            for name in _PARAM.findall(op.url_template):
                if name not in self.params:
                    self.params[name] = w.Text(value=defaults.get(name, ""), description=name, style=_STYLE,
                                               layout=w.Layout(width=_WIDTH))
        self._param_messages = {name: w.HTML() for name in self.params}
        self._param_rows = {name: w.HBox([field, self._param_messages[name]])
                            for name, field in self.params.items()}
        self.headers = w.Textarea(value="Content-Type: application/json", description="Headers",
                                  placeholder="Name: value (one per line)", style=_STYLE,
                                  layout=w.Layout(width=_WIDTH, height="4em"))
        secret = {"label_width": _LABEL, "width": _WIDTH}
        self.subscription_key = SecretField("Ocp-Apim-Subscription-Key", "subscription key (masked)",
                                            value=subscription_key, **secret)
        self.api_key = SecretField("Authorization: Bearer", "backend API key, only without a "
                                   "set-header policy (masked)", value=api_key, **secret)
        self.storage_connection_string = SecretField(
            "{{storage-connection-string}}", "for BES Submit bodies (masked)", value=storage_connection_string,
            **secret)
        self.body = w.Textarea(description="Body", style=_STYLE, layout=w.Layout(width=_WIDTH, height="12em"))
        self.send_button = w.Button(description="Send", button_style="primary", icon="paper-plane",
                                    layout=w.Layout(margin=f"6px 0 2px {_LABEL}"))
        self.output = w.Output()
        self.last: dict[str, Any] | None = None
        self.response: requests.Response | None = None
        self._params_box = w.VBox()
        self.children = [
            w.HTML(f"<b>Try it</b> &mdash; <code>{html.escape(self.gateway_url)}</code>"),
            self.operation, self.signature,
            w.HTML("<b>Request parameters</b>"), self._params_box,
            w.HTML("<b>Request headers</b>"), self.headers, self.subscription_key.widget, self.api_key.widget,
            w.HTML("<b>Request body</b>"), self.storage_connection_string.widget, self.body,
            self.send_button, self.output,
        ]
        self.operation.observe(self._on_operation, names="value")
        for field in self.params.values():
            field.observe(lambda change: self._check(), names="value")
        self.send_button.on_click(self._on_send)
        self._on_operation()

    # --- constructors ---------------------------------------------------------------------

    @classmethod
    def from_info(cls, info: Mapping[str, Any], **kwargs: Any) -> "TryIt":
        """A console for the offline stack's gateway (``stack.info()`` or the serve JSON)."""
        return cls(info["gateway_url"], subscription_key=info.get("subscription_key"),
                   storage_connection_string=info.get("storage_connection_string"),
                   workspace=info.get("workspace", ""), service=info.get("service", ""),
                   container=info.get("storage_container") or "azureml", **kwargs)

    @classmethod
    def from_form(cls, form: Any, **kwargs: Any) -> "TryIt":
        """A console using a :class:`CredentialsForm`'s gateway, keys and names."""
        return cls(form.gateway_url.value.strip() or form.endpoint,
                   subscription_key=form.subscription_key.value or None,
                   storage_connection_string=form.storage_connection_string.value or None,
                   workspace=form.workspace.value.strip(), service=form.service_name.value.strip(),
                   container=form.storage_container.value.strip() or "azureml", **kwargs)

    # --- form -----------------------------------------------------------------------------

    @property
    def current(self) -> Operation:
        return self.operations[self.operation.value]

    def _on_operation(self, change: Any = None) -> None:
        op = self.current
        names = _PARAM.findall(op.url_template)
        self._params_box.children = [self._param_rows[name] for name in names]
        self.signature.value = (f"<code>{op.method} {html.escape(op.url_template)}</code>"
                                f"<br><i>{html.escape(op.description)}</i>")
        has_body = op.method in ("POST", "PUT", "PATCH")
        self.body.disabled = not has_body
        if op.operation_id == "rrs-execute":
            self.body.value = pretty_json(_RRS_BODY)
        elif op.operation_id == "bes-submit":
            self.body.value = pretty_json(_bes_body(self.container))
        else:
            self.body.value = ""
        self._check()

    def _check(self) -> dict[str, str]:
        found = {}
        for name in _PARAM.findall(self.current.url_template):
            if not self.params[name].value.strip():
                found[name] = "required"
        for name, message in self._param_messages.items():
            set_message(message, found.get(name, ""))
        return found

    def _secrets(self) -> list[str]:
        from .credentials import _connection_string_secrets

        conn = self.storage_connection_string.value
        return [self.subscription_key.value, self.api_key.value, conn, *_connection_string_secrets(conn)]

    def request_url(self) -> str:
        """The URL Send calls, from the operation's template and the parameter fields."""
        template = self.current.url_template
        return self.gateway_url + _PARAM.sub(
            lambda m: quote(self.params[m.group(1)].value.strip(), safe=""), template)

    def request_headers(self) -> dict[str, str]:
        """Headers Send sends (with the secrets; never shown unmasked)."""
        headers: dict[str, str] = {}
        for number, line in enumerate(self.headers.value.splitlines(), 1):
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"Headers line {number}: expected 'Name: value', got {line.strip()!r}")
            headers[name.strip()] = value.strip()
        if self.subscription_key.is_set:
            headers["Ocp-Apim-Subscription-Key"] = self.subscription_key.value
        if self.api_key.is_set:
            headers["Authorization"] = f"Bearer {self.api_key.value}"
        return headers

    # --- sending --------------------------------------------------------------------------

    def send(self) -> dict[str, Any] | None:
        """Press Send from code; returns :attr:`last` (None when nothing was sent)."""
        self.send_button.click()
        return self.last

    def _on_send(self, button: w.Button | None = None) -> None:
        self.send_button.disabled = True
        self.running = True
        secrets = self._secrets()
        try:
            missing = self._check()
            if missing:
                raise ValueError("fill in the request parameters: " + ", ".join(missing))
            op = self.current
            url = self.request_url()
            headers = self.request_headers()
            body = None
            if not self.body.disabled and self.body.value.strip():
                text = self.body.value
                if STORAGE_PLACEHOLDER in text:
                    if not self.storage_connection_string.is_set:
                        raise ValueError(f"the body uses {STORAGE_PLACEHOLDER}: set the storage "
                                         "connection string field")
                    text = text.replace(STORAGE_PLACEHOLDER, self.storage_connection_string.value)
                body = text.encode("utf-8")
            response = self.session.request(op.method, url, headers=headers, data=body, timeout=self.timeout)
        except Exception as err:  # shown in the form, logged, never dropped
            self.last = None
            show_error(self.output, err, what="Send", secrets=secrets)
        else:
            self.response = response
            self._show(op, url, headers, response, secrets)
            if op.operation_id == "bes-submit" and response.ok:
                try:
                    job_id = response.json()
                except ValueError:
                    job_id = None
                if isinstance(job_id, str) and job_id:
                    self.params["jobid"].value = job_id
        finally:
            self.running = False
            self.send_button.disabled = False

    def _show(self, op: Operation, url: str, headers: Mapping[str, str], response: requests.Response,
              secrets: list[str]) -> None:
        shown_request_headers = {k: mask(v, secrets) for k, v in headers.items()}
        shown_headers = {k: mask(v, secrets) for k, v in response.headers.items()}
        try:
            body = pretty_json(response.json())
        except ValueError:
            body = response.text
        body = mask(body, secrets)
        self.last = {"method": op.method, "url": mask(url, secrets), "request_headers": shown_request_headers,
                     "status": response.status_code, "reason": response.reason, "headers": shown_headers,
                     "body": body}
        ok = 200 <= response.status_code < 300
        color = "#2a7d2e" if ok else "#b00020"
        lines = "\n".join(f"{k}: {v}" for k, v in shown_headers.items())
        request_lines = "\n".join(f"{k}: {v}" for k, v in shown_request_headers.items())
        html_text = (
            f"<div><b>Requested URL</b><br><code>{html.escape(op.method)} {html.escape(self.last['url'])}</code></div>"
            f"<details><summary>Request headers</summary><pre>{html.escape(request_lines)}</pre></details>"
            f'<div><b>Response status</b><br><span style="color:{color}">'
            f"{response.status_code} {html.escape(response.reason or '')}</span></div>"
            f"<div><b>Response headers</b><pre>{html.escape(lines)}</pre></div>"
            f"<div><b>Response content</b><pre>{html.escape(body)}</pre></div>")
        plain = (f"Requested URL\n{op.method} {self.last['url']}\n\nRequest headers\n{request_lines}\n\n"
                 f"Response status\n{response.status_code} {response.reason or ''}\n\n"
                 f"Response headers\n{lines}\n\nResponse content\n{body}")
        show(self.output, html_text, plain)
        log.info("Try it: %s %s -> %s", op.method, self.last["url"], response.status_code)

    def __repr__(self) -> str:
        return (f"TryIt({self.gateway_url!r}, operation={self.operation.value!r}, subscription_key="
                f"{'set' if self.subscription_key.is_set else 'unset'})")
