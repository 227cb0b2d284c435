"""The local AzureML web-service host: RRS, BES, swagger.json and help pages over HTTP.

It is a plain ASGI application (no web framework: the request path is short, and it needs
exact control of status codes, body limits and even dropping a connection for fault
injection), served by uvicorn on 127.0.0.1 through :func:`azml_nb.local._server.serve`.
Request and response bodies go through :mod:`azml_nb.payload`, the codec the clients use.

URLs, below the host's base URL (``http://127.0.0.1:PORT``)::

    POST   /workspaces/{ws}/services/{svc}/execute?api-version=2.0[&details=true][&format=swagger]
    POST   /workspaces/{ws}/services/{svc}/jobs?api-version=2.0            submit  -> "job id"
    GET    /workspaces/{ws}/services/{svc}/jobs?api-version=2.0            list jobs
    POST   /workspaces/{ws}/services/{svc}/jobs/{id}/start?api-version=2.0
    GET    /workspaces/{ws}/services/{svc}/jobs/{id}?api-version=2.0       status
    DELETE /workspaces/{ws}/services/{svc}/jobs/{id}?api-version=2.0       cancel and forget
    GET    /workspaces/{ws}/services/{svc}/swagger.json                     (no key needed)
    GET    /workspaces/{ws}/services/{svc}/help                             (no key needed)

>>> from azml_nb.local.host import WebServiceHost
>>> from azml_nb.local.experiments import simple_feature_hashing_experiment
>>> with WebServiceHost().start() as host:                                  # doctest: +SKIP
...     svc = host.publish(simple_feature_hashing_experiment())
...     svc.execute_url
'http://127.0.0.1:41233/workspaces/5f0.../services/9ab.../execute?api-version=2.0&details=true'
"""
from __future__ import annotations

import asyncio
import contextvars
import hmac
import html
import logging
import random
import secrets
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import parse_qs

import numpy as np
import pandas as pd

from ..errors import PayloadError, SchemaError
from ..payload import dumps, from_payload, loads, swagger_properties, to_payload, to_response
from ._http import HostError, bad_argument, envelope
from .bes import JobManager
from .experiments import Experiment, ModuleError, coerce_to_schema

log = logging.getLogger(__name__)

__all__ = ["WebServiceHost", "PublishedService", "FaultInjection", "FAULT_KINDS"]

FAULT_KINDS = ("throttle", "timeout", "drop")
API_VERSION = "2.0"

# True inside a request whose connection the host drops on purpose (fault injection); the
# ASGI call runs in uvicorn's request task, so uvicorn's complaint about the unfinished
# answer is logged in the same context and can be told apart from a real one.
_dropping: contextvars.ContextVar[bool] = contextvars.ContextVar("azml_nb_dropping", default=False)


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _dropping.get()


if not any(isinstance(f, _QuietDrops) for f in logging.getLogger("uvicorn.error").filters):
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


@dataclass
class FaultInjection:
    """Make a fraction of RRS calls fail the way a struggling service does.

    Parameters
    ----------
    rate : float
        Fraction of execute calls that fail (0 = off, 1 = every call).
    kinds : sequence of {"throttle", "timeout", "drop"}
        ``throttle``: 503 ServiceUnavailable / RequestThrottled; ``timeout``: 504
        GatewayTimeout; ``drop``: the connection is closed before the answer is complete.
        Each failing call picks one kind at random.
    seed : int, optional
        Seed of the random choices, for repeatable tests.

    >>> host.faults = FaultInjection(rate=0.2, kinds=("throttle",), seed=1)   # doctest: +SKIP
    """

    rate: float = 0.0
    kinds: Sequence[str] = FAULT_KINDS
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.rate) <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {self.rate!r}")
        self.kinds = tuple(self.kinds)
        bad = [k for k in self.kinds if k not in FAULT_KINDS]
        if bad or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {FAULT_KINDS}, got {list(self.kinds)}")
        self._rng = random.Random(self.seed)

    def pick(self) -> str | None:
        """The fault for the next call, or None."""
        with self._lock:
            if self.rate <= 0 or self._rng.random() >= self.rate:
                return None
            return self._rng.choice(self.kinds)


@dataclass(repr=False)
class PublishedService:
    """A published experiment: what a client needs to call it (``api_key`` is secret)."""

    workspace: str
    service: str
    api_key: str
    secondary_key: str
    experiment: Experiment
    max_concurrent_calls: int
    _host: "WebServiceHost"
    _in_flight: int = 0
    _definitions: dict[str, Any] = field(default_factory=dict)
    _example: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str | None:
        """The host's base URL (None until the host is started)."""
        return self._host.base_url

    @property
    def path(self) -> str:
        return f"/workspaces/{self.workspace}/services/{self.service}"

    def _url(self, tail: str) -> str:
        if self.base_url is None:
            raise RuntimeError("the host is not started; call WebServiceHost.start() first")
        return self.base_url + self.path + tail

    @property
    def execute_url(self) -> str:
        return self._url(f"/execute?api-version={API_VERSION}&details=true")

    @property
    def jobs_url(self) -> str:
        return self._url(f"/jobs?api-version={API_VERSION}")

    @property
    def swagger_url(self) -> str:
        return self._url("/swagger.json")

    @property
    def help_url(self) -> str:
        return self._url("/help")

    def __repr__(self) -> str:
        return (f"<PublishedService {self.experiment.name!r} workspace={self.workspace} "
                f"service={self.service} base_url={self.base_url}>")


_ROUTE_PREFIX = "/workspaces/"


def _new_key() -> str:
    return secrets.token_urlsafe(64)


class WebServiceHost:
    """An ASGI app hosting any number of published experiments behind AzureML's URLs.

    Parameters
    ----------
    workspace : str, optional
        Workspace id of services published without one (default: a random 32-hex id).
    max_concurrent_calls : int
        Default MaxConcurrentCalls per service: RRS calls beyond it at once get 503
        ServiceUnavailable / TooManyConcurrentRequests.
    max_body_bytes : int
        Larger request bodies get 413 MemoryQuotaViolation.
    request_timeout : float
        Seconds an RRS call may run before the host answers 408 RequestTimeout.
    job_workers : int
        Worker threads for BES jobs; more started jobs wait in a queue.
    sas_ttl : timedelta
        Lifetime of the read-only SAS tokens of finished BES jobs.
    faults : FaultInjection, optional
        Off by default; may be set (and changed) at any time as ``host.faults``.
    """

    def __init__(self, *, workspace: str | None = None, max_concurrent_calls: int = 20,
                 max_body_bytes: int = 32 * 1024 * 1024, request_timeout: float = 90.0,
                 job_workers: int = 2, sas_ttl: timedelta = timedelta(hours=1),
                 faults: FaultInjection | None = None, rrs_threads: int = 8):
        if max_concurrent_calls < 1:
            raise ValueError(f"max_concurrent_calls must be >= 1, got {max_concurrent_calls}")
        self.workspace = workspace or uuid.uuid4().hex
        self.max_concurrent_calls = max_concurrent_calls
        self.max_body_bytes = max_body_bytes
        self.request_timeout = request_timeout
        self.faults = faults
        self._services: dict[tuple[str, str], PublishedService] = {}
        self._jobs = JobManager(workers=job_workers, sas_ttl=sas_ttl)
        self._rrs_threads = rrs_threads
        self._pool: ThreadPoolExecutor | None = None
        self._server = None

    # --- publishing --------------------------------------------------------------------

    def publish(self, experiment: Experiment, *, service: str | None = None, workspace: str | None = None,
                max_concurrent_calls: int | None = None) -> PublishedService:
        """Publish *experiment* as a web service (Studio's "Deploy Web Service").

        Returns the :class:`PublishedService` with workspace and service ids, a primary and
        a secondary API key (random, 86 characters) and, once started, the base URL.
        """
        ws, sv = workspace or self.workspace, service or uuid.uuid4().hex
        if (ws, sv) in self._services:
            raise ValueError(f"service {sv!r} is already published in workspace {ws!r}")
        published = PublishedService(ws, sv, _new_key(), _new_key(), experiment,
                                     max_concurrent_calls or self.max_concurrent_calls, self)
        try:
            output = experiment.output_example()
        except Exception as err:
            raise ValueError(f"experiment {experiment.name!r} fails on its own example input: {err}") from err
        published._definitions = {
            f"{experiment.input_name}Item": {"type": "object",
                                             "properties": swagger_properties(experiment.empty_input())},
            f"{experiment.output_name}Item": {"type": "object", "properties": swagger_properties(output)},
        }
        example = to_payload(experiment.example, format="swagger", input_name=experiment.input_name,
                             numbers_as_strings=True, global_parameters=experiment.default_parameters())
        published._example = example
        self._services[(ws, sv)] = published
        self._jobs.register((ws, sv), experiment)
        log.info("published %r as workspace %s service %s", experiment.name, ws, sv)
        return published

    def unpublish(self, published: PublishedService) -> None:
        self._services.pop((published.workspace, published.service), None)

    @property
    def services(self) -> list[PublishedService]:
        return list(self._services.values())

    @contextmanager
    def injected_faults(self, rate: float = 1.0, *, kinds: Sequence[str] = FAULT_KINDS,
                        seed: int | None = None) -> Iterator[FaultInjection]:
        """Switch fault injection on for a ``with`` block, then restore the previous setting.

        >>> with host.injected_faults(0.3, kinds=("throttle", "drop"), seed=1):   # doctest: +SKIP
        ...     svc.score(df)          # the client's retries meet 503s and dropped connections
        """
        previous, self.faults = self.faults, FaultInjection(rate=rate, kinds=kinds, seed=seed)
        try:
            yield self.faults
        finally:
            self.faults = previous

    # --- running -----------------------------------------------------------------------

    def start(self, *, host: str = "127.0.0.1", port: int = 0) -> "WebServiceHost":
        """Serve on ``host:port`` (0 = a free port) in a background thread."""
        from ._server import serve

        if self._server is None:
            if self._pool is None:  # (again, after stop)
                self._pool = ThreadPoolExecutor(max_workers=self._rrs_threads, thread_name_prefix="azml_nb-rrs")
            self._jobs.open()
            self._server = serve(self, host=host, port=port, name="azureml-host")
        return self

    def stop(self) -> None:
        """Stop serving, cancel running jobs, and free the worker threads."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._jobs.shutdown()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    @property
    def base_url(self) -> str | None:
        return self._server.url if self._server is not None else None

    def __enter__(self) -> "WebServiceHost":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<WebServiceHost {self.base_url or '(not started)'} services={len(self._services)}>"

    # --- ASGI --------------------------------------------------------------------------

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        out = _Responder(send, uuid.uuid4().hex)
        try:
            await self._dispatch(scope, receive, out)
        except HostError as err:
            if not out.started:
                await out.json(err.status, err.body(), headers=err.headers)
        except Exception:
            log.exception("request %s failed inside the host", out.request_id)
            if not out.started:
                await out.json(500, envelope("InternalError", "The service encountered an internal "
                                             f"error (request id {out.request_id})."))

    async def _dispatch(self, scope: dict, receive: Callable, out: "_Responder") -> None:
        method, path = scope["method"], scope["path"]
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        if path in ("", "/") and method == "GET":
            return await out.html(200, self._index_page())
        if not path.startswith(_ROUTE_PREFIX):
            raise HostError(404, f"No resource at {path!r}.", code="NotFound")
        parts = path[len(_ROUTE_PREFIX):].split("/")
        if len(parts) < 3 or parts[1] != "services":
            raise HostError(404, f"No resource at {path!r}.", code="NotFound")
        ws, sv, rest = parts[0], parts[2], [p for p in parts[3:] if p]
        svc = self._services.get((ws, sv))
        if svc is None:
            raise HostError(404, f"Web service {sv!r} was not found in workspace {ws!r}.", code="NotFound")

        if rest == ["swagger.json"]:
            _allow(method, "GET")
            return await out.json(200, self._swagger(svc, scope))
        if rest in ([], ["help"]):
            _allow(method, "GET")
            return await out.html(200, self._help_page(svc))

        self._authenticate(svc, scope)
        version = query.get("api-version")
        if version is not None and version != API_VERSION:
            raise bad_argument("InvalidApiVersion", f"api-version {version!r} is not supported; use {API_VERSION!r}")
        key = (svc.workspace, svc.service)
        if rest == ["execute"]:
            _allow(method, "POST")
            return await self._execute(svc, scope, receive, query, out)
        if rest == ["jobs"]:
            _allow(method, "POST", "GET")
            if method == "GET":
                return await out.json(200, [dict(Id=j.id, **j.to_wire()) for j in self._jobs.list(key)])
            body = await self._read_body(scope, receive)
            job = self._jobs.submit(key, self._parse_json(body))
            return await out.json(200, job.id)
        if len(rest) == 2 and rest[0] == "jobs":
            _allow(method, "GET", "DELETE")
            if method == "GET":
                return await out.json(200, self._jobs.get(key, rest[1]).to_wire())
            self._jobs.delete(key, rest[1])
            return await out.empty(200)
        if len(rest) == 3 and rest[0] == "jobs" and rest[2] == "start":
            _allow(method, "POST")
            await self._read_body(scope, receive)
            self._jobs.start(key, rest[1])
            return await out.empty(200)
        raise HostError(404, f"No resource at {path!r}.", code="NotFound")

    @staticmethod
    def _authenticate(svc: PublishedService, scope: dict) -> None:
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode("latin-1")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip().encode()
        if scheme.lower() == "bearer" and token and (
                hmac.compare_digest(token, svc.api_key.encode())
                or hmac.compare_digest(token, svc.secondary_key.encode())):
            return
        raise HostError(401, "Invalid credentials provided.", code="Unauthorized")

    async def _read_body(self, scope: dict, receive: Callable) -> bytes:
        limit = self.max_body_bytes
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HostError(400, "The client closed the connection.", code="BadArgument")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _parse_json(body: bytes) -> Any:
        try:
            return loads(body) if body.strip() else None
        except PayloadError as err:
            raise bad_argument("InputParseError", f"The request body is {err}") from err
        except RecursionError:  # valid JSON nested deeper than the parser's stack
            raise bad_argument("InputParseError", "The request body is nested too deeply to parse.") from None

    # --- RRS ---------------------------------------------------------------------------

    async def _execute(self, svc: PublishedService, scope: dict, receive: Callable, query: Mapping[str, str],
                       out: "_Responder") -> None:
        details = query.get("details", "false").lower() == "true"
        fmt = "swagger" if query.get("format", "").lower() == "swagger" else "classic"
        if svc._in_flight >= svc.max_concurrent_calls:
            await self._read_body(scope, receive)
            raise HostError(503, "The service is temporarily unavailable: more than "
                            f"{svc.max_concurrent_calls} concurrent calls.", code="ServiceUnavailable",
                            details=[{"code": "TooManyConcurrentRequests",
                                      "message": f"MaxConcurrentCalls is {svc.max_concurrent_calls}; "
                                                 "retry later or lower the number of parallel calls."}])
        svc._in_flight += 1
        try:
            body = await self._read_body(scope, receive)
            faults = self.faults
            fault = faults.pick() if faults is not None else None
            if fault == "throttle":
                raise HostError(503, "The service is temporarily unavailable: the request was throttled.",
                                code="ServiceUnavailable",
                                details=[{"code": "RequestThrottled", "message": "Request is throttled; retry later."}])
            if fault == "timeout":
                raise HostError(504, "The request timed out at the gateway.", code="GatewayTimeout")
            if fault == "drop":
                await out.drop()
                return
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._pool, self._score, svc, body, fmt, details)
            try:
                result = await asyncio.wait_for(future, self.request_timeout)
            except asyncio.TimeoutError:
                raise HostError(408, f"The request took longer than {self.request_timeout:g} s.",
                                code="RequestTimeout") from None
            await out.raw(200, result, b"application/json; charset=utf-8")
        finally:
            svc._in_flight -= 1

    def _score(self, svc: PublishedService, body: bytes, fmt: str, details: bool) -> bytes:
        """Parse, validate, run and encode one RRS call (in a worker thread)."""
        exp = svc.experiment
        payload = self._parse_json(body)
        if not isinstance(payload, dict):
            raise bad_argument("InputParseError", "The request body must be a JSON object like "
                               '{"Inputs": {"input1": ...}, "GlobalParameters": {}}.')
        inputs = payload.get("Inputs")
        if inputs is None:
            raise bad_argument("MissingInput", "The request has no 'Inputs'; expected "
                               f'{{"Inputs": {{"{exp.input_name}": ...}}}}.')
        if not isinstance(inputs, dict):
            raise bad_argument("InputParseError", "'Inputs' must be an object of input name -> table.")
        unknown = [n for n in inputs if n != exp.input_name]
        if unknown:
            raise bad_argument("InputNameNotFound", f"Unknown input name(s) {unknown}; this service's "
                               f"input is {exp.input_name!r}.", target=unknown[0])
        if exp.input_name not in inputs:
            raise bad_argument("MissingInput", f"The request has no input {exp.input_name!r}.",
                               target=exp.input_name)
        frame = self._read_input(svc, inputs[exp.input_name], fmt)
        params = payload.get("GlobalParameters") or {}
        if not isinstance(params, dict):
            raise bad_argument("InvalidGlobalParameters", "'GlobalParameters' must be an object.")
        try:
            result = exp.run(frame, params)
        except ModuleError as err:
            raise HostError(400, f"Module execution encountered an error. {err}", code="ModuleExecutionError",
                            details=[{"code": "ModuleExecutionError", "target": err.module,
                                      "message": str(err)}]) from err
        except PayloadError as err:  # a GlobalParameters value of the wrong type
            raise bad_argument("InvalidGlobalParameter", str(err), target=err.column) from err
        return dumps(to_response(result, format=fmt, details=details, output_name=exp.output_name))

    def _read_input(self, svc: PublishedService, table: Any, fmt: str) -> pd.DataFrame:
        exp = svc.experiment
        name, expected = exp.input_name, exp.input_columns
        label = f"input {name!r}"
        if fmt == "swagger":
            if not isinstance(table, list):
                raise bad_argument("InputParseError", f"{label}: with format=swagger the input must be a list "
                                   f"of records like [{{{expected[0]!r}: ...}}].", target=name)
            for row, rec in enumerate(table):
                if not isinstance(rec, dict):
                    raise bad_argument("InputParseError", f"{label} row {row}: expected an object, "
                                       f"got {type(rec).__name__}.", target=name)
                if rec.keys() != set(expected):
                    _column_mismatch(label, list(rec), expected, row=row, target=name)
        else:
            if not isinstance(table, dict) or "Values" not in table:
                hint = " (records need &format=swagger)" if isinstance(table, list) else ""
                raise bad_argument("InputParseError", f"{label}: expected {{\"ColumnNames\": [...], "
                                   f"\"Values\": [[...], ...]}}{hint}.", target=name)
            names = table.get("ColumnNames")
            if names is None:
                names = expected
                table = {**table, "ColumnNames": names}
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise bad_argument("InputParseError", f"{label}: ColumnNames must be a list of strings.",
                                   target=name)
            if sorted(names) != sorted(expected):
                _column_mismatch(label, names, expected, target=name)
            values = table["Values"]
            if not isinstance(values, list):
                raise bad_argument("InputParseError", f"{label}: Values must be a list of rows.", target=name)
            for row, r in enumerate(values):
                if not isinstance(r, list):
                    raise bad_argument("InputParseError", f"{label} row {row}: expected a list of values, "
                                       f"got {type(r).__name__}.", target=name)
                if len(r) != len(names):
                    raise bad_argument("TableSchemaColumnCountMismatch",
                                       f"{label} row {row} has {len(r)} value(s); expected {len(names)} "
                                       f"for columns {names}.", target=name)
        try:
            frame = from_payload({"Inputs": {name: table}}, format=fmt, schema={"definitions": svc._definitions})
            if list(frame.columns) != expected:
                frame = frame[expected]
            return _check_finite(coerce_to_schema(frame, exp.input_schema), exp.input_schema)
        except SchemaError as err:  # pragma: no cover - the checks above come first
            raise bad_argument("TableSchemaColumnNameMismatch", f"{label}: {err}", target=name) from err
        except PayloadError as err:
            raise bad_argument("InputParseError", f"{label}: {err}", target=name) from err

    # --- swagger.json and help ---------------------------------------------------------

    def _swagger(self, svc: PublishedService, scope: dict) -> dict[str, Any]:
        exp = svc.experiment
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
        error_ref = {"description": "Error", "schema": {"$ref": "#/definitions/ErrorResponse"}}
        version_param = {"name": "api-version", "in": "query", "required": True, "type": "string",
                         "default": API_VERSION, "enum": [API_VERSION]}
        blob_location = {"type": "object", "required": ["ConnectionString", "RelativeLocation"],
                         "properties": {"ConnectionString": {"type": "string"},
                                        "RelativeLocation": {"type": "string"}}}
        job_path = {"name": "jobid", "in": "path", "required": True, "type": "string"}
        doc: dict[str, Any] = {
            "swagger": "2.0",
            "info": {"title": exp.name, "description": exp.description or exp.name, "version": API_VERSION},
            "host": host or "127.0.0.1",
            "basePath": svc.path,
            "schemes": ["http"],
            "consumes": ["application/json"],
            "produces": ["application/json"],
            "securityDefinitions": {"Bearer": {"type": "apiKey", "name": "Authorization", "in": "header",
                                               "description": "'Bearer ' followed by the service's API key"}},
            "security": [{"Bearer": []}],
            "paths": {
                "/execute": {"post": {
                    "summary": "Execute the web service (request-response) and get its output",
                    "operationId": "execute",
                    "parameters": [
                        version_param,
                        {"name": "format", "in": "query", "required": True, "type": "string",
                         "default": "swagger", "enum": ["swagger"]},
                        {"name": "body", "in": "body", "required": True,
                         "schema": {"$ref": "#/definitions/ExecutionRequest"}}],
                    "responses": {"200": {"description": "OK",
                                          "schema": {"$ref": "#/definitions/ExecutionResponse"}},
                                  "default": error_ref}}},
                "/jobs": {"post": {
                    "summary": "Submit a batch execution job (not started)",
                    "operationId": "submitJob",
                    "parameters": [version_param, {"name": "body", "in": "body", "required": True,
                                                   "schema": {"$ref": "#/definitions/BatchJobRequest"}}],
                    "responses": {"200": {"description": "The job id", "schema": {"type": "string"}},
                                  "default": error_ref}}},
                "/jobs/{jobid}/start": {"post": {
                    "summary": "Start a submitted batch job", "operationId": "startJob",
                    "parameters": [job_path, version_param],
                    "responses": {"200": {"description": "Started"}, "default": error_ref}}},
                "/jobs/{jobid}": {
                    "get": {"summary": "Status (and results) of a batch job", "operationId": "getJob",
                            "parameters": [job_path, version_param],
                            "responses": {"200": {"description": "OK",
                                                  "schema": {"$ref": "#/definitions/BatchJobStatus"}},
                                          "default": error_ref}},
                    "delete": {"summary": "Cancel and delete a batch job", "operationId": "deleteJob",
                               "parameters": [job_path, version_param],
                               "responses": {"200": {"description": "Deleted"}, "default": error_ref}}},
            },
            "definitions": {
                **svc._definitions,
                "ExecutionRequest": {
                    "type": "object",
                    "properties": {
                        "Inputs": {"type": "object", "properties": {exp.input_name: {
                            "type": "array", "items": {"$ref": f"#/definitions/{exp.input_name}Item"}}}},
                        "GlobalParameters": {"type": "object", "properties": {
                            p: {"type": _swagger_type(v)} for p, v in exp.default_parameters().items()}}},
                    "example": svc._example},
                "ExecutionResponse": {"type": "object", "properties": {"Results": {
                    "type": "object", "properties": {exp.output_name: {
                        "type": "array", "items": {"$ref": f"#/definitions/{exp.output_name}Item"}}}}}},
                "BatchJobRequest": {"type": "object", "properties": {
                    "Inputs": {"type": "object", "additionalProperties": blob_location},
                    "Outputs": {"type": "object", "additionalProperties": blob_location},
                    "GlobalParameters": {"type": "object"}}},
                "BatchJobStatus": {"type": "object", "properties": {
                    "StatusCode": {"type": "string",
                                   "enum": ["NotStarted", "Running", "Failed", "Cancelled", "Finished"]},
                    "Results": {"type": "object"}, "Details": {"type": "string"}}},
                "ErrorResponse": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"},
                    "details": {"type": "array", "items": {"type": "object"}}}}}},
            },
        }
        return doc

    def _help_page(self, svc: PublishedService) -> str:
        exp = svc.experiment
        esc = html.escape

        def rows(props: Mapping[str, Any]) -> str:
            return "".join(f"<tr><td><code>{esc(c)}</code></td><td>{esc(p.get('type', ''))}"
                           f"{' (' + esc(p['format']) + ')' if p.get('format') else ''}</td></tr>"
                           for c, p in props.items())

        inputs = svc._definitions[f"{exp.input_name}Item"]["properties"]
        outputs = svc._definitions[f"{exp.output_name}Item"]["properties"]
        params = "".join(f"<tr><td><code>{esc(p)}</code></td><td>{esc(repr(v))}</td></tr>"
                         for p, v in exp.default_parameters().items()) or "<tr><td colspan=2>none</td></tr>"
        base = (svc.base_url or "") + svc.path
        example = esc(dumps(svc._example).decode())
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(exp.name)} - API help</title></head>
<body>
<h1>{esc(exp.name)}</h1>
<p>{esc(exp.description)}</p>
<p>Workspace <code>{esc(svc.workspace)}</code>, service <code>{esc(svc.service)}</code>.
Send the API key as <code>Authorization: Bearer &lt;key&gt;</code>.</p>
<h2>Request-response (RRS)</h2>
<p><code>POST {esc(base)}/execute?api-version=2.0&amp;details=true</code>
(add <code>&amp;format=swagger</code> for row records)</p>
<h3>Input <code>{esc(exp.input_name)}</code></h3>
<table border=1><tr><th>column</th><th>type</th></tr>{rows(inputs)}</table>
<h3>Output <code>{esc(exp.output_name)}</code></h3>
<table border=1><tr><th>column</th><th>type</th></tr>{rows(outputs)}</table>
<h3>GlobalParameters</h3>
<table border=1><tr><th>name</th><th>default</th></tr>{params}</table>
<h3>Example request (format=swagger)</h3>
<pre>{example}</pre>
<h2>Batch execution (BES)</h2>
<ul>
<li>submit: <code>POST {esc(base)}/jobs?api-version=2.0</code> with Inputs/Outputs blob locations</li>
<li>start: <code>POST {esc(base)}/jobs/{{id}}/start?api-version=2.0</code></li>
<li>status: <code>GET {esc(base)}/jobs/{{id}}?api-version=2.0</code></li>
<li>cancel and delete: <code>DELETE {esc(base)}/jobs/{{id}}?api-version=2.0</code></li>
</ul>
<p><a href="{esc(base)}/swagger.json">swagger.json</a></p>
</body></html>
"""

    def _index_page(self) -> str:
        items = "".join(f'<li><a href="{html.escape(s.path)}/help">{html.escape(s.experiment.name)}</a> '
                        f"(workspace <code>{html.escape(s.workspace)}</code>, service "
                        f"<code>{html.escape(s.service)}</code>)</li>" for s in self._services.values())
        return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>azml_nb local host</title>"
                f"</head><body><h1>Published web services</h1><ul>{items or '<li>none</li>'}</ul></body></html>")


def _swagger_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def _check_finite(frame: pd.DataFrame, schema: Mapping[str, str]) -> pd.DataFrame:
    """*frame*, or a PayloadError naming the first infinite Double cell.

    ``"1e400"`` and ``"Infinity"`` parse as floats, but the answer cannot carry them (JSON
    has no infinity), so they are refused as input like any value that does not parse.
    """
    for col, ctype in schema.items():
        if ctype == "Double":
            bad = np.flatnonzero(np.isinf(frame[col].to_numpy(dtype="float64", na_value=np.nan)))
            if bad.size:
                row = int(bad[0])
                raise PayloadError(f"column {col!r} row {row}: {frame[col].iloc[row]!r} is not a finite Double",
                                   column=col, row=row)
    return frame


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise HostError(405, f"Method {method} is not allowed here; use {' or '.join(allowed)}.",
                        code="MethodNotAllowed", headers=[("allow", ", ".join(allowed))])


def _too_large(size: int, limit: int) -> HostError:
    return HostError(413, f"The request body ({size} bytes) is larger than the limit of {limit} bytes; "
                     "send fewer rows per call.", code="MemoryQuotaViolation")


def _column_mismatch(label: str, given: list[str], expected: list[str], *, row: int | None = None,
                     target: str) -> None:
    where = f"{label} row {row}" if row is not None else label
    if len(given) != len(expected):
        raise bad_argument("TableSchemaColumnCountMismatch",
                           f"{where} has {len(given)} column(s) {given}; expected {len(expected)}: {expected}.",
                           target=target)
    wrong = [c for c in given if c not in expected]
    raise bad_argument("TableSchemaColumnNameMismatch",
                       f"{where}: unexpected column(s) {wrong}; expected columns {expected}.", target=target)


class _Responder:
    """Sends one HTTP answer through the ASGI ``send`` callable."""

    def __init__(self, send: Callable, request_id: str):
        self._send = send
        self.request_id = request_id
        self.started = False

    async def raw(self, status: int, body: bytes, content_type: bytes | None,
                  headers: Sequence[tuple[str, str]] = ()) -> None:
        hdrs = [(b"content-length", str(len(body)).encode()), (b"x-ms-request-id", self.request_id.encode())]
        if content_type:
            hdrs.append((b"content-type", content_type))
        hdrs += [(k.encode(), v.encode()) for k, v in headers]
        self.started = True
        await self._send({"type": "http.response.start", "status": status, "headers": hdrs})
        await self._send({"type": "http.response.body", "body": body})

    async def json(self, status: int, obj: Any, headers: Sequence[tuple[str, str]] = ()) -> None:
        await self.raw(status, dumps(obj), b"application/json; charset=utf-8", headers)

    async def html(self, status: int, text: str) -> None:
        await self.raw(status, text.encode("utf-8"), b"text/html; charset=utf-8")

    async def empty(self, status: int) -> None:
        await self.raw(status, b"", None)

    async def drop(self) -> None:
        """Start a 200 answer and never finish it: the server closes the connection."""
        self.started = True
        _dropping.set(True)
        await self._send({"type": "http.response.start", "status": 200,
                          "headers": [(b"content-length", b"4096"), (b"content-type", b"application/json")]})
        await self._send({"type": "http.response.body", "body": b'{"Results": ', "more_body": True})
