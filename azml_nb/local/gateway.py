"""A local Azure API Management gateway: products, subscription keys, policies, usage reports.

The gateway is configured by data, the way an APIM instance is in the portal: a service
instance, APIs (display name, web service URL, URL suffix, products), operations (HTTP
method, URL template, display name, responses), products with policies, subscriptions
with a primary and a secondary key, and named values. It then runs as an ASGI reverse
proxy on loopback (uvicorn, via :func:`azml_nb.local._server.serve`) and answers the way
APIM does on the wire: the same 401/403/404/429 bodies and ``Retry-After`` headers.

Step by step, as in the seed walkthrough (the local host or any base URL as backend)::

    from azml_nb.local.gateway import Gateway
    gw = Gateway("demoazureml", organization="demoazureml", admin_email="admin@example.com")
    gw.set_named_value("azureml-api-key", api_key, secret=True)
    api = gw.add_api("AzureML Demo API", service_url=host_url, url_suffix="azureml-demo")
    api.add_operation("POST", "/workspaces/{workspace}/services/{service}/execute"
                      "?api-version={apiversion}&details={details}", "RRS Execute")
    api.set_policy(BACKEND_KEY_POLICY)                # Authorization: Bearer {{azureml-api-key}}
    starter = gw.add_product("starter", "Starter", policy=STARTER_POLICY, apis=[api])
    sub = gw.subscribe("starter", display_name="Ada")
    with gw.start():
        requests.post(gw.api_url(api) + "/workspaces/ws/services/svc/execute?api-version=2.0"
                      "&details=true", json=body, headers={"Ocp-Apim-Subscription-Key": sub.primary_key})
    gw.usage.report(by="operation")                   # callCountSuccess, ..., as a DataFrame

:func:`demo_gateway` builds the seed's whole set-up in one call; :meth:`Gateway.import_openapi`
loads an API from an OpenAPI document (such as :func:`azml_nb.apim.openapi`'s).
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import quote, unquote_plus, urlsplit

from ..apim import API_DISPLAY_NAME, API_SUFFIX, OPERATIONS, SWAGGER_OPERATION, Operation
from ..errors import LocalStackError
from ._backend import BackendError, BackendPool
from .policies import (ForwardRequest, Policies, PolicyError, Quota, RateLimit, SetHeader,
                       ensure_named_values, format_timespan, parse_policies)

log = logging.getLogger(__name__)

__all__ = [
    "Gateway", "Api", "Product", "Subscription", "UsageLog", "PolicyError",
    "demo_gateway", "STARTER_POLICY", "BACKEND_KEY_POLICY", "USAGE_COLUMNS", "REPORT_COLUMNS",
]

SUBSCRIPTION_HEADER = "Ocp-Apim-Subscription-Key"
SUBSCRIPTION_QUERY = "subscription-key"

#: APIM's own answers (DESIGN.md)
MISSING_KEY = ("Access denied due to missing subscription key. Make sure to include "
               "subscription key when making requests to an API.")
INVALID_KEY = ("Access denied due to invalid subscription key. Make sure to provide a valid "
               "key for an active subscription.")
NOT_FOUND = "Resource not found"

#: the product policy of APIM's default "Starter" product
STARTER_POLICY = """<policies>
  <inbound>
    <base />
    <rate-limit calls="5" renewal-period="60" />
    <quota calls="100" renewal-period="604800" />
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"""

#: the API policy that hides the backend key from clients: the gateway adds it, and drops
#: the subscription key before forwarding
BACKEND_KEY_POLICY = """<policies>
  <inbound>
    <base />
    <set-header name="Authorization" exists-action="override">
      <value>Bearer {{azureml-api-key}}</value>
    </set-header>
    <set-header name="Ocp-Apim-Subscription-Key" exists-action="delete" />
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"""

USAGE_COLUMNS = ["timestamp", "api", "operation", "product", "subscription", "status_code",
                 "outcome", "request_bytes", "response_bytes", "api_time_ms", "service_time_ms"]
REPORT_COLUMNS = ["callCountSuccess", "callCountBlocked", "callCountFailed", "callCountTotal",
                  "bandwidth", "apiTimeAvg", "serviceTimeAvg"]
_REPORT_BY = {"api": "api", "operation": "operation", "product": "product",
              "subscription": "subscription", "time": "timestamp"}
_HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
               b"te", b"trailer", b"trailers", b"transfer-encoding", b"upgrade", b"host",
               b"content-length", b"expect"}
_BACKEND_ONLY = _HOP_BY_HOP | {b"date", b"server"}   # the gateway's server sets its own
_TEMPLATE_PARAM = re.compile(r"\{([^{}]+)\}")


def _new_key() -> str:
    return secrets.token_hex(16)     # 32 hex characters, like APIM's keys


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "api"


# --- configuration objects ---------------------------------------------------------------

class _Route:
    """An operation's URL template compiled for matching."""

    def __init__(self, op: Operation):
        self.op = op
        path, _, query = op.url_template.partition("?")
        pattern, pos = "", 0
        self.path_params: list[str] = []
        for m in _TEMPLATE_PARAM.finditer(path):
            pattern += re.escape(path[pos:m.start()]) + "([^/]+)"
            self.path_params.append(m.group(1))
            pos = m.end()
        pattern += re.escape(path[pos:])
        self.regex = re.compile(pattern + r"/?\Z" if path != "/" else r"/?\Z")
        self.literal_length = len(_TEMPLATE_PARAM.sub("", path))
        # query part: name=value pairs; a {template} value makes the parameter required
        self.query: list[tuple[str, str | None]] = []
        for part in filter(None, query.split("&")):
            name, _, value = part.partition("=")
            m = _TEMPLATE_PARAM.fullmatch(value)
            self.query.append((name, None if m else value))

    def match(self, method: str, path: str, query: Mapping[str, str]) -> bool:
        if method != self.op.method or not self.regex.match(path):
            return False
        return all(name in query if literal is None else query.get(name) == literal
                   for name, literal in self.query)


@dataclass(eq=False)
class Api:
    """An API of the gateway: a backend web service exposed under a URL suffix.

    Create with :meth:`Gateway.add_api`; add operations with :meth:`add_operation`.
    """

    gateway: "Gateway" = field(repr=False)
    api_id: str
    display_name: str
    service_url: str
    url_suffix: str
    protocols: tuple[str, ...] = ("https",)
    subscription_required: bool = True
    description: str = ""
    operations: list[Operation] = field(default_factory=list)
    policies: Policies = field(default_factory=Policies, repr=False)
    operation_policies: dict[str, Policies] = field(default_factory=dict, repr=False)
    _routes: list[_Route] = field(default_factory=list, repr=False)

    def add_operation(self, method: str, url_template: str, display_name: str, *,
                      operation_id: str | None = None, description: str = "",
                      responses: Sequence[int] = (200,)) -> Operation:
        """Add an operation (the portal's "Add operation" form) and return it.

        Parameters
        ----------
        method : str
            ``GET``, ``POST``, ``PUT``, ``PATCH``, ``DELETE``, ``HEAD`` or ``OPTIONS``.
        url_template : str
            Path and optional query, ``{name}`` marking a parameter, e.g.
            ``/workspaces/{workspace}/services/{service}/jobs?api-version={apiversion}``.
            Query parameters of the template are required, as in APIM.
        display_name : str
            e.g. ``"BES Submit"``; the operation id defaults to its slug (``bes-submit``).
        """
        method = method.upper()
        if method not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
            raise ValueError(f"operation {display_name!r}: method {method!r} is not an HTTP method")
        if not url_template.startswith("/"):
            raise ValueError(f"operation {display_name!r}: url_template must start with '/', "
                             f"got {url_template!r}")
        op = Operation(operation_id or _slug(display_name), display_name, method, url_template,
                       description, tuple(responses))
        if any(o.operation_id == op.operation_id for o in self.operations):
            raise ValueError(f"API {self.api_id!r} already has an operation {op.operation_id!r}")
        self.operations.append(op)
        self._routes.append(_Route(op))
        self._routes.sort(key=lambda r: -r.literal_length)   # literal segments win over {params}
        return op

    def set_policy(self, xml: str, *, operation: str | None = None) -> Policies:
        """Set the API's policy document, or one operation's (by operation id)."""
        where = f"API {self.api_id!r}" + (f" operation {operation!r}" if operation else "")
        if operation is not None and operation not in {o.operation_id for o in self.operations}:
            raise ValueError(f"{where}: no such operation (known: "
                             f"{', '.join(o.operation_id for o in self.operations)})")
        policies = self.gateway._parse(xml, where)
        if operation is None:
            self.policies = policies
        else:
            self.operation_policies[operation] = policies
        return policies

    def match(self, method: str, path: str, query: Mapping[str, str]) -> Operation | None:
        """The operation whose template matches *path* (below the suffix) and *query*, or None."""
        for route in self._routes:
            if route.match(method, path, query):
                return route.op
        return None


@dataclass(eq=False)
class Product:
    """A product: a set of APIs offered under one policy (e.g. rate-limited Starter)."""

    gateway: "Gateway" = field(repr=False)
    product_id: str
    display_name: str
    description: str = ""
    subscription_required: bool = True
    state: str = "published"
    apis: list[str] = field(default_factory=list)
    policies: Policies = field(default_factory=Policies, repr=False)

    def add_api(self, api: Api | str) -> None:
        """Offer *api* (an :class:`Api` or its id) in this product."""
        api_id = api.api_id if isinstance(api, Api) else api
        if api_id not in {a.api_id for a in self.gateway.apis.values()}:
            raise ValueError(f"product {self.product_id!r}: no API {api_id!r} on the gateway")
        if api_id not in self.apis:
            self.apis.append(api_id)

    def set_policy(self, xml: str) -> Policies:
        """Set the product's policy document (rate limits and quotas usually live here)."""
        self.policies = self.gateway._parse(xml, f"product {self.product_id!r}")
        return self.policies


class Subscription:
    """A subscription to a product: two keys (primary, secondary) and a state.

    Keys are readable attributes (a subscriber needs them) but never appear in the repr,
    in logs or in usage records.
    """

    STATES = ("active", "suspended", "cancelled", "expired", "submitted", "rejected")

    def __init__(self, gateway: "Gateway", subscription_id: str, product_id: str, display_name: str,
                 primary_key: str | None = None, secondary_key: str | None = None,
                 state: str = "active"):
        self._gateway = gateway
        self.subscription_id = subscription_id
        self.product_id = product_id
        self.display_name = display_name
        self.primary_key = primary_key or _new_key()
        self.secondary_key = secondary_key or _new_key()
        self.state = state

    def __repr__(self) -> str:
        return (f"<Subscription {self.subscription_id!r} product={self.product_id!r} "
                f"state={self.state!r}>")

    def regenerate_key(self, which: str = "primary") -> str:
        """Replace the primary or secondary key with a new random one; return the new key."""
        if which not in ("primary", "secondary"):
            raise ValueError(f"which={which!r}: expected 'primary' or 'secondary'")
        key = _new_key()
        setattr(self, f"{which}_key", key)
        self._gateway._reindex()
        return key

    def suspend(self) -> None:
        """Suspend: its keys are answered with APIM's 401 invalid-key body until :meth:`activate`."""
        self.state = "suspended"

    def activate(self) -> None:
        self.state = "active"

    def cancel(self) -> None:
        self.state = "cancelled"


# --- usage ---------------------------------------------------------------------------------

class UsageLog:
    """Every call the gateway answered, and reports over them like APIM's Reports API.

    Records hold no keys: the subscription is named by its id.
    """

    def __init__(self) -> None:
        self._records: list[tuple] = []
        self._lock = threading.Lock()

    def _add(self, record: tuple) -> None:
        with self._lock:
            self._records.append(record)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[dict]:
        """The usage records as a list of dicts (keys: :data:`USAGE_COLUMNS`)."""
        with self._lock:
            rows = list(self._records)
        return [dict(zip(USAGE_COLUMNS, row)) for row in rows]

    def frame(self):
        """The usage records as a DataFrame with :data:`USAGE_COLUMNS` (timestamp in UTC)."""
        import pandas as pd

        with self._lock:
            rows = list(self._records)
        df = pd.DataFrame(rows, columns=USAGE_COLUMNS)
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
        for col in ("status_code", "request_bytes", "response_bytes"):
            df[col] = df[col].astype("int64")
        for col in ("api_time_ms", "service_time_ms"):
            df[col] = df[col].astype("float64")
        return df

    def report(self, by: str | Sequence[str] = "operation", *, interval: str = "PT1M",
               as_frame: bool = True):
        """Aggregate the records like the APIM Reports API.

        Parameters
        ----------
        by : str or list of str
            ``"api"``, ``"operation"``, ``"product"``, ``"subscription"`` or ``"time"``, or
            several of them (e.g. ``["product", "operation"]``).
        interval : str
            Time bucket for ``by="time"``: ISO 8601 (``"PT15M"``, as APIM takes it) or a
            pandas frequency (``"1min"``).
        as_frame : bool
            True: a DataFrame; False: a list of dicts with ISO timestamps (Python data).

        Returns
        -------
        DataFrame or list of dict
            The group columns, then ``callCountSuccess`` (status < 400), ``callCountBlocked``
            (the gateway's 401, 403 and 429), ``callCountFailed`` (other errors),
            ``callCountTotal``, ``bandwidth`` (request + response bytes), ``apiTimeAvg``
            (ms in the gateway, backend included), ``serviceTimeAvg`` (ms in the backend,
            over calls that reached it).

        Examples
        --------
        >>> gw.usage.report(by="product")                         # doctest: +SKIP
             product  callCountSuccess  callCountBlocked  ...  apiTimeAvg  serviceTimeAvg
        0    starter                 5                 3  ...        4.21            3.12
        """
        import pandas as pd

        keys = [by] if isinstance(by, str) else list(by)
        bad = [k for k in keys if k not in _REPORT_BY]
        if bad or not keys:
            raise ValueError(f"by={by!r}: expected one or several of {', '.join(_REPORT_BY)}")
        df = self.frame()
        groups = [_REPORT_BY[k] for k in keys]
        if "time" in keys:
            freq = pd.Timedelta(interval) if interval.startswith("P") else pd.tseries.frequencies.to_offset(interval)
            df["timestamp"] = df["timestamp"].dt.floor(freq)
        df = df.assign(
            callCountSuccess=(df["outcome"] == "success").astype("int64"),
            callCountBlocked=(df["outcome"] == "blocked").astype("int64"),
            callCountFailed=(df["outcome"] == "failed").astype("int64"),
            bandwidth=df["request_bytes"] + df["response_bytes"])
        out = (df.groupby(groups, dropna=False, sort=True)
               .agg(callCountSuccess=("callCountSuccess", "sum"),
                    callCountBlocked=("callCountBlocked", "sum"),
                    callCountFailed=("callCountFailed", "sum"),
                    callCountTotal=("outcome", "size"),
                    bandwidth=("bandwidth", "sum"),
                    apiTimeAvg=("api_time_ms", "mean"),
                    serviceTimeAvg=("service_time_ms", "mean"))
               .reset_index())
        out = out.rename(columns={"timestamp": "time"})
        if as_frame:
            return out
        rows = out.astype(object).where(out.notna(), None).to_dict("records")
        for row in rows:
            if "time" in row and row["time"] is not None:
                row["time"] = row["time"].isoformat()
        return rows


# --- the gateway -------------------------------------------------------------------------

class Gateway:
    """An APIM service instance running locally: APIs, products, subscriptions, policies.

    Parameters
    ----------
    name : str
        Service instance name (the ``{name}`` of ``https://{name}.azure-api.net``).
    organization, admin_email : str
        As entered when creating the instance; used by the ``az apim create`` export.
    clock : callable, optional
        Seconds as a float (default :func:`time.monotonic`); rate limits and quotas read it.
    backend_timeout : float
        Seconds to wait for the backend unless a ``forward-request timeout`` says otherwise.

    The ASGI application is the gateway object itself; :meth:`start` serves it on loopback.
    Requests go to ``{url}/{url_suffix}/{operation path}``; the subscription key comes in
    the ``Ocp-Apim-Subscription-Key`` header or the ``subscription-key`` query parameter
    (the header wins; the query parameter is never forwarded).
    """

    def __init__(self, name: str = "demoazureml", *, organization: str = "", admin_email: str = "",
                 clock: Callable[[], float] = time.monotonic, backend_timeout: float = 300.0):
        self.name = name
        self.organization = organization or name
        self.admin_email = admin_email
        self.clock = clock
        self.backend_timeout = backend_timeout
        self.apis: dict[str, Api] = {}            # by url suffix
        self.products: dict[str, Product] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.policies = Policies()                # the "All APIs" (global) scope
        self.usage = UsageLog()
        self._named: dict[str, tuple[str, bool]] = {}
        self._by_key: dict[str, Subscription] = {}
        self._secrets: list[bytes] = []
        self._client = None
        self.server = None

    def __repr__(self) -> str:
        where = self.server.url if self.server else "not started"
        return (f"<Gateway {self.name!r} apis={list(self.apis)} products={list(self.products)} "
                f"subscriptions={len(self.subscriptions)} {where}>")

    # -- configuration --

    def set_named_value(self, name: str, value: str, *, secret: bool = True) -> None:
        """Define ``{{name}}`` for policies; a secret value is also scrubbed from responses."""
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ValueError(f"named value {name!r}: use letters, digits, '.', '_' and '-' only")
        self._named[name] = (value, secret)
        self._secrets = [v.encode() for v, s in self._named.values() if s and v]

    def named_values(self) -> dict[str, str]:
        """Named values with secret ones masked (safe to display)."""
        return {n: ("***" if s else v) for n, (v, s) in self._named.items()}

    def set_policy(self, xml: str) -> Policies:
        """Set the global ("All APIs") policy document."""
        self.policies = self._parse(xml, "global policy")
        return self.policies

    def _parse(self, xml: str, where: str) -> Policies:
        policies = parse_policies(xml, where=where)
        ensure_named_values(policies, self._named.__contains__, where)
        return policies

    def add_api(self, display_name: str, service_url: str, url_suffix: str, *,
                api_id: str | None = None, protocols: Sequence[str] = ("https",),
                products: Iterable[str] = (), subscription_required: bool = True,
                description: str = "", operations: Iterable[Operation] = ()) -> Api:
        """Add an API (the portal's "Add API" form) and return it.

        Parameters
        ----------
        display_name : str
            e.g. ``"AzureML Demo API"``.
        service_url : str
            The backend's base URL, e.g. ``https://ussouthcentral.services.azureml.net``
            or the local host's ``base_url``.
        url_suffix : str
            The path the API lives under on the gateway, e.g. ``"azureml-demo"``.
        protocols : sequence of str
            The web API URL scheme of the real instance (``https``); the local gateway
            itself speaks plain HTTP on loopback.
        products : iterable of str
            Ids of existing products that offer the API.
        operations : iterable of Operation
            Operations to add at once (e.g. :data:`azml_nb.apim.OPERATIONS`).
        """
        suffix = url_suffix.strip("/")
        if suffix in self.apis:
            raise ValueError(f"the URL suffix {suffix!r} is already used by API "
                             f"{self.apis[suffix].api_id!r}")
        if urlsplit(service_url).scheme not in ("http", "https"):
            raise ValueError(f"API {display_name!r}: service_url must be an http(s) URL, "
                             f"got {service_url!r}")
        api = Api(self, api_id or _slug(suffix or display_name), display_name,
                  service_url.rstrip("/"), suffix, tuple(protocols), subscription_required,
                  description)
        self.apis[suffix] = api
        for op in operations:
            api.add_operation(op.method, op.url_template, op.display_name,
                              operation_id=op.operation_id, description=op.description,
                              responses=op.responses)
        for product_id in products:
            self._product(product_id).add_api(api)
        return api

    def api(self, api_id: str) -> Api:
        """The API with this id."""
        for api in self.apis.values():
            if api.api_id == api_id:
                return api
        raise KeyError(f"no API {api_id!r} (known: {', '.join(a.api_id for a in self.apis.values())})")

    def add_product(self, product_id: str, display_name: str, *, policy: str | None = None,
                    apis: Iterable[Api | str] = (), description: str = "",
                    subscription_required: bool = True) -> Product:
        """Add a product, optionally with its policy document and APIs."""
        if product_id in self.products:
            raise ValueError(f"product {product_id!r} exists already")
        product = Product(self, product_id, display_name, description, subscription_required)
        if policy is not None:
            product.set_policy(policy)
        self.products[product_id] = product
        for api in apis:
            product.add_api(api)
        return product

    def _product(self, product_id: str) -> Product:
        try:
            return self.products[product_id]
        except KeyError:
            raise KeyError(f"no product {product_id!r} (known: {', '.join(self.products)})") from None

    def subscribe(self, product_id: str, *, display_name: str | None = None,
                  subscription_id: str | None = None, primary_key: str | None = None,
                  secondary_key: str | None = None) -> Subscription:
        """Create an active subscription to a product, with fresh keys unless given."""
        self._product(product_id)
        sid = subscription_id or f"{product_id}-{len(self.subscriptions) + 1}"
        if sid in self.subscriptions:
            raise ValueError(f"subscription {sid!r} exists already")
        sub = Subscription(self, sid, product_id, display_name or sid, primary_key, secondary_key)
        self.subscriptions[sid] = sub
        self._reindex()
        return sub

    def _reindex(self) -> None:
        index = {}
        for sub in self.subscriptions.values():
            index[sub.primary_key] = sub
            index[sub.secondary_key] = sub
        self._by_key = index

    def import_openapi(self, document: Mapping[str, Any] | str, *, service_url: str | None = None,
                       url_suffix: str | None = None, display_name: str | None = None,
                       products: Iterable[str] = ()) -> Api:
        """Add an API from an OpenAPI 3.0 document (a dict, or its JSON text).

        Each operation's URL template is its path plus its required query parameters
        (``?api-version={api-version}``), as ``az apim api import`` builds it. The service
        URL defaults to the document's first ``servers`` entry.
        """
        doc = json.loads(document) if isinstance(document, str) else document
        if not str(doc.get("openapi", "")).startswith("3."):
            raise ValueError("import_openapi: expected an OpenAPI 3.x document "
                             f"(openapi: {doc.get('openapi')!r})")
        servers = doc.get("servers") or [{}]
        service_url = service_url or servers[0].get("url")
        if not service_url:
            raise ValueError("import_openapi: the document has no servers[0].url; pass service_url=")
        info = doc.get("info", {})
        suffix = url_suffix if url_suffix is not None else info.get("x-url-suffix", _slug(info.get("title", "api")))
        api = self.add_api(display_name or info.get("title", suffix), service_url, suffix,
                           description=info.get("description", ""), products=products)
        for path, item in doc.get("paths", {}).items():
            shared = item.get("parameters", [])
            for method, spec in item.items():
                if method not in ("get", "post", "put", "patch", "delete", "head", "options"):
                    continue
                params = shared + spec.get("parameters", [])
                query = [p["name"] for p in params if p.get("in") == "query" and p.get("required")]
                template = path + ("?" + "&".join(f"{q}={{{q}}}" for q in query) if query else "")
                responses = tuple(int(c) for c in spec.get("responses", {}) if str(c).isdigit())
                api.add_operation(method.upper(), template,
                                  spec.get("summary") or spec.get("operationId") or f"{method} {path}",
                                  operation_id=spec.get("operationId"),
                                  description=spec.get("description", ""),
                                  responses=responses or (200,))
        return api

    # -- serving --

    def start(self, *, host: str = "127.0.0.1", port: int = 0) -> "Gateway":
        """Serve the gateway on loopback (``port=0``: a free port); returns self."""
        from ._server import serve

        if self.server is not None:
            raise LocalStackError(f"gateway {self.name!r} is running already on {self.server.url}")
        self.server = serve(self, host=host, port=port, name=f"gateway {self.name}")
        return self

    def stop(self) -> None:
        """Stop serving (a no-op when not started)."""
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> "Gateway":
        if self.server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The gateway's base URL (``http://127.0.0.1:PORT``), once started."""
        if self.server is None:
            raise LocalStackError(f"gateway {self.name!r} is not started; call start() first")
        return self.server.url

    def api_url(self, api: Api | str | None = None) -> str:
        """The base URL of an API on the gateway: ``{url}/{url_suffix}`` (first API by default)."""
        if api is None:
            api = next(iter(self.apis.values()))
        elif isinstance(api, str):
            api = self.api(api)
        return f"{self.url}/{api.url_suffix}" if api.url_suffix else self.url

    def openapi(self, api: Api | str | None = None, **options: Any) -> dict:
        """Export an API as OpenAPI 3.0 (see :func:`azml_nb.apim.openapi`)."""
        from ..apim import openapi

        api = next(iter(self.apis.values())) if api is None else (self.api(api) if isinstance(api, str) else api)
        return openapi(operations=api.operations, title=api.display_name, service_url=api.service_url,
                       url_suffix=api.url_suffix, gateway_name=self.name,
                       description=api.description, **options)

    # -- ASGI --

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._client = self._make_client()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                    self._client = None
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    def _make_client() -> BackendPool:
        return BackendPool()

    async def _http(self, scope: dict, receive: Callable, send: Callable) -> None:
        started = time.perf_counter()
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return                  # the client left before its body was complete: forward nothing
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        ctx = _Call()
        try:
            status, headers, payload = await self._handle(scope, body, ctx)
        except Exception:   # never leak a traceback (or a key in it) to the client
            log.exception("gateway %s: internal error", self.name)
            status, headers, payload = _own_answer(500, "Internal server error")
            ctx.outcome = "failed"
        if status not in (204, 304):
            headers.append((b"content-length", str(len(payload)).encode()))
        # recorded before the answer leaves, so that a client that got it finds its record
        api_ms = (time.perf_counter() - started) * 1000
        self.usage._add((datetime.now(timezone.utc), ctx.api, ctx.operation, ctx.product,
                         ctx.subscription, status, ctx.outcome or _outcome(status), len(body),
                         len(payload), api_ms, ctx.service_ms))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _handle(self, scope: dict, body: bytes, ctx: "_Call") -> tuple[int, list, bytes]:
        path = scope["path"]
        api, rest = self._api_for(path)
        raw_query = scope.get("query_string", b"").decode("latin-1")
        pairs = [p for p in raw_query.split("&") if p]
        query = {}
        for part in pairs:
            name, _, value = part.partition("=")
            query.setdefault(unquote_plus(name), unquote_plus(value))
        op = api.match(scope["method"], rest, query) if api else None
        if op is None:
            return _own_answer(404, NOT_FOUND)
        ctx.api, ctx.operation = api.api_id, op.operation_id

        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k not in _HOP_BY_HOP]
        key = next((v for k, v in headers if k.lower() == "ocp-apim-subscription-key"), None)
        if key is None:
            key = query.get(SUBSCRIPTION_QUERY)
        product = sub = None
        if api.subscription_required:
            if not key:
                ctx.outcome = "blocked"
                return _own_answer(401, MISSING_KEY)
            sub = self._by_key.get(key)
            product = self.products.get(sub.product_id) if sub else None
            if (sub is None or sub.state != "active" or product is None
                    or product.state != "published" or api.api_id not in product.apis):
                ctx.outcome = "blocked"
                return _own_answer(401, INVALID_KEY)
            ctx.product, ctx.subscription = product.product_id, sub.subscription_id

        # policy scopes: global -> product -> API -> operation, each <base /> pulling in the outer
        op_policies = api.operation_policies.get(op.operation_id, Policies())
        sections = {}
        for section in ("inbound", "backend", "outbound"):
            statements = self.policies.compose([], section)
            if product is not None:
                statements = product.policies.compose(statements, section)
            statements = api.policies.compose(statements, section)
            sections[section] = op_policies.compose(statements, section)

        timeout = self.backend_timeout
        for stmt in sections["inbound"]:
            if isinstance(stmt, (RateLimit, Quota)):
                counter = self._counter_key(stmt, sub, scope)
                wait = stmt.window.hit(counter, self.clock())
                if wait > 0:
                    ctx.outcome = "blocked"
                    seconds = max(1, math.ceil(wait))
                    if isinstance(stmt, RateLimit):
                        return _own_answer(429, f"Rate limit is exceeded. Try again in {seconds} seconds.",
                                           retry_after=seconds)
                    return _own_answer(403, "Out of call volume quota. Quota will be replenished in "
                                       f"{format_timespan(wait)}.", retry_after=seconds)
            elif isinstance(stmt, SetHeader):
                headers = stmt.apply(headers, self._named_lookup)
        for stmt in sections["backend"]:
            if isinstance(stmt, ForwardRequest):
                timeout = stmt.timeout

        # forward: the operation path below the suffix, the query without subscription-key
        forward_query = "&".join(p for p in pairs
                                 if unquote_plus(p.partition("=")[0]) != SUBSCRIPTION_QUERY)
        raw_path = scope.get("raw_path")                 # forward the path as the client encoded it
        prefix = f"/{api.url_suffix}" if api.url_suffix else ""
        if raw_path and raw_path.decode("latin-1").startswith(prefix):
            rest = raw_path.decode("latin-1")[len(prefix):] or "/"
        else:
            rest = quote(rest, safe="/:@!$&'()*+,;=-._~%")
        url = api.service_url + rest + ("?" + forward_query if forward_query else "")
        client = self._client or self._ensure_client()
        t0 = time.perf_counter()
        try:
            status, raw_headers, payload = await client.request(scope["method"], url, headers, body,
                                                                timeout=timeout)
        except (BackendError, asyncio.TimeoutError) as err:
            ctx.service_ms = (time.perf_counter() - t0) * 1000
            ctx.outcome = "failed"
            if isinstance(err, asyncio.TimeoutError):
                log.warning("gateway %s: backend %s timed out after %ss", self.name, api.api_id, timeout)
                return _own_answer(504, "Backend service did not respond in time.")
            log.warning("gateway %s: backend %s: %s", self.name, api.api_id, err)
            return _own_answer(502, "Bad gateway: the backend service closed the connection or "
                               "could not be reached.")
        ctx.service_ms = (time.perf_counter() - t0) * 1000

        out = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers
               if k.lower() not in _BACKEND_ONLY]
        for stmt in sections["outbound"]:
            if isinstance(stmt, SetHeader):
                out = stmt.apply(out, self._named_lookup)
        payload, out = self._scrub(payload, out)
        return status, [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out], payload

    def _ensure_client(self):
        # served without lifespan events (e.g. by another ASGI server): make the client lazily
        self._client = self._make_client()
        return self._client

    @property
    def _named_lookup(self) -> Mapping[str, str]:
        return {n: v for n, (v, _s) in self._named.items()}

    def _scrub(self, payload: bytes, headers: list[tuple[str, str]]) -> tuple[bytes, list]:
        """Remove secret named values (the backend key) from whatever goes back to the client."""
        if not self._secrets:
            return payload, headers
        encoded = any(k.lower() == "content-encoding" for k, _ in headers)
        for secret in self._secrets:
            if not encoded and secret in payload:
                payload = payload.replace(secret, b"***")
        text = [s.decode() for s in self._secrets]
        headers = [(k, _redact_all(v, text)) for k, v in headers]
        return payload, headers

    def _api_for(self, path: str) -> tuple[Api | None, str]:
        for suffix in sorted(self.apis, key=len, reverse=True):
            if not suffix:
                return self.apis[suffix], path
            prefix = "/" + suffix
            if path == prefix or path.startswith(prefix + "/"):
                return self.apis[suffix], path[len(prefix):] or "/"
        return None, path

    @staticmethod
    def _counter_key(stmt: RateLimit | Quota, sub: Subscription | None, scope: dict) -> object:
        kind = stmt.counter_key
        if kind is None or kind == "subscription":
            return sub.subscription_id if sub else None
        if kind == "ip":
            return (scope.get("client") or ("", 0))[0]
        return kind   # literal: one counter for everyone


class _Call:
    """What the usage record of one call needs (filled in while the call is handled)."""

    __slots__ = ("api", "operation", "product", "subscription", "outcome", "service_ms")

    def __init__(self) -> None:
        self.api = self.operation = self.product = self.subscription = self.outcome = None
        self.service_ms = math.nan


def _redact_all(text: str, secrets_: Sequence[str]) -> str:
    for s in secrets_:
        if s in text:
            text = text.replace(s, "***")
    return text


def _own_answer(status: int, message: str, *, retry_after: int | None = None) -> tuple[int, list, bytes]:
    """A response the gateway gives itself, with APIM's body shape."""
    body = json.dumps({"statusCode": status, "message": message}).encode()
    headers = [(b"content-type", b"application/json")]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return status, headers, body


def _outcome(status: int) -> str:
    if status < 400:
        return "success"
    return "blocked" if status in (401, 403, 429) else "failed"


def demo_gateway(service_url: str, api_key: str, *, name: str = "demoazureml",
                 organization: str = "demoazureml", admin_email: str = "admin@example.com",
                 url_suffix: str = API_SUFFIX, starter_policy: str = STARTER_POLICY,
                 **options: Any) -> Gateway:
    """The seed's set-up in one call: instance, API, six operations, products, subscriptions.

    - API "AzureML Demo API" at ``/azureml-demo`` in front of *service_url*, with the five
      operations of :data:`azml_nb.apim.OPERATIONS` plus ``service-swagger`` (the service's
      ``swagger.json``, passed through);
    - the named value ``azureml-api-key`` (secret) = *api_key*, and the API policy
      :data:`BACKEND_KEY_POLICY`, so clients hold only subscription keys;
    - products ``starter`` (policy *starter_policy*, by default APIM's 5 calls/60 s and
      100 calls/week) and ``unlimited`` (no limits), with one subscription each:
      ``demo-starter`` and ``demo-unlimited``.

    Examples
    --------
    >>> gw = demo_gateway(host.base_url, host.api_key).start()        # doctest: +SKIP
    >>> key = gw.subscriptions["demo-unlimited"].primary_key          # doctest: +SKIP
    """
    gw = Gateway(name, organization=organization, admin_email=admin_email, **options)
    gw.set_named_value("azureml-api-key", api_key, secret=True)
    api = gw.add_api(API_DISPLAY_NAME, service_url, url_suffix, api_id=API_SUFFIX,
                     operations=OPERATIONS + (SWAGGER_OPERATION,))
    api.set_policy(BACKEND_KEY_POLICY)
    gw.add_product("starter", "Starter", policy=starter_policy, apis=[api],
                   description="Rate-limited: for trying the API out.")
    gw.add_product("unlimited", "Unlimited", apis=[api], description="No rate limit or quota.")
    gw.subscribe("starter", subscription_id="demo-starter", display_name="Demo (Starter)")
    gw.subscribe("unlimited", subscription_id="demo-unlimited", display_name="Demo (Unlimited)")
    return gw
