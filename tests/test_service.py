"""Unit tests of the RRS client: configuration, batching, retries, errors, schema checks.

The service is a fake session whose handler answers with azml_nb.payload's own codec;
the integration tests (test_service_integration.py) talk to the real local host.
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pandas as pd
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

import azml_nb as az
from azml_nb import errors
from azml_nb.payload import from_payload, loads, to_response
from azml_nb.service import RetryPolicy, ScoreResult, WebService, _parse_retry_after

KEY = "api-KEY-0123456789abcdef"
SUB = "sub-KEY-fedcba9876543210"
FAST = RetryPolicy(retries=5, backoff=0.001, backoff_max=0.002, deadline=10)


def response(status: int, body: object = None, headers: dict | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
    r.headers = CaseInsensitiveDict(headers or {})
    r.reason = "reason"
    return r


class FakeSession:
    """Records calls; `handler(method, url, body, headers, n)` returns a Response or raises."""

    def __init__(self, handler):
        self.handler = handler
        self.calls: list[tuple[str, str, bytes | None, dict]] = []
        self.timeouts: list = []
        self.lock = threading.Lock()

    def request(self, method, url, data=None, headers=None, timeout=None):
        with self.lock:
            self.calls.append((method, url, data, dict(headers or {})))
            self.timeouts.append(timeout)
            n = len(self.calls)
        return self.handler(method, url, data, headers or {}, n)

    def close(self):
        pass


def doubling(method, url, body, headers, n):
    """A scoring service: echoes Col2 and returns twice Col1 as Int32."""
    if url.endswith("swagger.json"):
        return response(404, {"error": {"code": "NotFound", "message": "no swagger"}})
    frame = from_payload(loads(body))
    out = pd.DataFrame({"Col2": frame["Col2"].astype(str), "Twice": frame["Col1"].astype("int64") * 2})
    fmt = "swagger" if "format=swagger" in url else "classic"
    return response(200, to_response(out, format=fmt))


def svc_with(handler, **kw) -> tuple[WebService, FakeSession]:
    session = FakeSession(handler)
    kw.setdefault("retry", FAST)
    return WebService("ws", "svc", KEY, base_url="http://fake", session=session, **kw), session


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"Col1": np.arange(n), "Col2": [f"text {i} words" for i in range(n)]},
                        index=[f"r{i}" for i in range(n)])


# --- configuration -------------------------------------------------------------------------

def test_repr_and_config_errors_hide_keys():
    svc = WebService("ws", "svc", KEY, gateway_url="http://gw/api", subscription_key=SUB)
    assert KEY not in repr(svc) and SUB not in repr(svc) and "***" in repr(svc)
    with pytest.raises(errors.ConfigurationError, match="no endpoint"):
        WebService("ws", "svc", KEY)
    with pytest.raises(errors.ConfigurationError, match="region"):
        WebService("ws", "svc", KEY, region="West Europe")
    with pytest.raises(errors.ConfigurationError, match="api_key"):
        WebService("ws", "svc", base_url="http://x")


def test_region_names_map_to_hosts():
    svc = WebService("ws", "svc", KEY, region="ussouthcentral")
    assert svc.execute_url() == ("https://ussouthcentral.services.azureml.net/workspaces/ws/"
                                 "services/svc/execute?api-version=2.0&details=true")
    assert svc.jobs_url("j 1", "/start") == ("https://ussouthcentral.services.azureml.net/workspaces/"
                                             "ws/services/svc/jobs/j%201/start?api-version=2.0")


def test_from_env_and_from_info(tmp_path):
    env = {"AZML_WORKSPACE": "ws", "AZML_SERVICE": "svc", "AZML_API_KEY": KEY,
           "AZML_BASE_URL": "http://127.0.0.1:1"}
    assert WebService.from_env(env).base_url == "http://127.0.0.1:1"
    with pytest.raises(errors.ConfigurationError, match="AZML_SERVICE"):
        WebService.from_env({"AZML_WORKSPACE": "ws"})
    info = {"base_url": "http://127.0.0.1:2", "workspace": "ws", "service": "svc", "api_key": KEY,
            "gateway_url": "http://127.0.0.1:3/azureml-demo", "subscription_key": SUB}
    via_gateway = WebService.from_info(info)
    assert via_gateway.url == "http://127.0.0.1:3/azureml-demo"
    headers = via_gateway._headers(json_body=True)
    assert headers["Ocp-Apim-Subscription-Key"] == SUB and "Authorization" not in headers
    direct = WebService.from_info(json.dumps(info), gateway=False)
    assert direct.url == "http://127.0.0.1:2"
    assert direct._headers(json_body=False)["Authorization"] == f"Bearer {KEY}"
    path = tmp_path / "serve.json"
    path.write_text(json.dumps(info) + "\nlog line after\n")
    assert WebService.from_info(path).workspace == "ws"
    with pytest.raises(errors.ConfigurationError, match="gateway_url"):
        WebService.from_info({**info, "gateway_url": None}, gateway=True)


def test_gateway_sends_backend_key_only_when_given():
    svc = WebService("ws", "svc", None, gateway_url="http://gw/api", subscription_key=SUB)
    assert "Authorization" not in svc._headers(json_body=True)
    svc = WebService("ws", "svc", KEY, gateway_url="http://gw/api", subscription_key=SUB)
    assert svc._headers(json_body=True)["Authorization"] == f"Bearer {KEY}"
    assert svc.execute_url().startswith("http://gw/api/workspaces/ws/services/svc/execute")


def test_retry_after_forms():
    assert _parse_retry_after("7") == 7.0
    assert _parse_retry_after("00:57:12") == 57 * 60 + 12
    assert _parse_retry_after("2.12 days") == pytest.approx(2.12 * 86400)
    assert _parse_retry_after("nonsense") is None
    assert 0 <= _parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 1


# --- batching ------------------------------------------------------------------------------

def test_batches_by_rows_keep_order_and_index():
    def slow_first(method, url, body, headers, n):  # early batches answer last
        if n <= 3:
            time.sleep(0.05)
        return doubling(method, url, body, headers, n)

    svc, session = svc_with(slow_first, batch_size=7, max_workers=4)
    df = frame(50)
    out = svc.score(df, progress=False)
    assert list(out.index) == list(df.index)
    assert out["Twice"].tolist() == [2 * i for i in range(50)]
    assert out["Twice"].dtype == np.dtype("int32") or str(out["Twice"].dtype).startswith("int")
    posts = [c for c in session.calls if c[0] == "POST"]
    assert len(posts) == 8 and all(len(from_payload(loads(c[2]))) <= 7 for c in posts)


def test_batches_by_encoded_size_stay_under_the_limit():
    svc, session = svc_with(doubling, batch_size=10_000, max_workers=2)
    df = pd.DataFrame({"Col1": np.arange(400), "Col2": ["x" * (50 + i % 300) for i in range(400)]})
    out = svc.score(df, progress=False, max_request_bytes=8_000)
    posts = [c for c in session.calls if c[0] == "POST"]
    assert len(posts) > 10
    assert max(len(c[2]) for c in posts) <= 8_000
    assert out["Twice"].tolist() == [2 * i for i in range(400)]


def test_a_single_row_over_the_limit_is_refused_naming_it():
    svc, session = svc_with(doubling)
    df = pd.DataFrame({"Col1": [1, 2, 3], "Col2": ["a", "b" * 5000, "c"]})
    with pytest.raises(errors.PayloadError, match="row 1") as info:
        svc.score(df, progress=False, max_request_bytes=2048, max_workers=1, batch_size=1)
    assert info.value.row == 1


def test_empty_frame_and_missing_values():
    def echo(method, url, body, headers, n):
        if url.endswith("swagger.json"):
            return response(404, {})
        return response(200, to_response(from_payload(loads(body))))

    svc, _ = svc_with(echo)
    empty = frame(0)
    out = svc.score(empty, progress=False)
    assert len(out) == 0 and list(out.columns) == ["Col1", "Col2"]
    gaps = pd.DataFrame({"x": [1.5, np.nan], "t": pd.to_datetime(["2020-01-01", None])})
    out = svc.score(gaps, progress=False)
    assert np.isnan(out["x"].iloc[1]) and pd.isna(out["t"].iloc[1]) and out["x"].iloc[0] == 1.5


# --- retries and errors --------------------------------------------------------------------

class RecordingPolicy(RetryPolicy):
    waits: list

    def delay(self, attempt, retry_after=None):
        d = super().delay(attempt, retry_after)
        self.waits.append((attempt, retry_after, d))
        return d


def test_throttling_and_dropped_connections_are_retried_honouring_retry_after():
    policy = RecordingPolicy(retries=6, backoff=0.001, backoff_max=0.002, deadline=10)
    object.__setattr__(policy, "waits", [])
    answers = iter([response(503, {"error": {"code": "ServiceUnavailable", "message": "busy",
                                             "details": [{"code": "RequestThrottled", "message": "x"}]}}),
                    requests.ConnectionError("dropped"),
                    response(429, {"statusCode": 429, "message": "Rate limit is exceeded."},
                             {"Retry-After": "0.05"}),
                    response(504, b"gateway timeout"),
                    None])

    def flaky(method, url, body, headers, n):
        if url.endswith("swagger.json"):
            return response(404, {})
        nxt = next(answers)
        if isinstance(nxt, Exception):
            raise nxt
        return nxt if nxt is not None else doubling(method, url, body, headers, n)

    svc, session = svc_with(flaky, retry=policy)
    out = svc.score(frame(5), progress=False)
    assert out["Twice"].tolist() == [0, 2, 4, 6, 8]
    assert [w[0] for w in policy.waits] == [0, 1, 2, 3]
    assert policy.waits[2][1] == 0.05 and policy.waits[2][2] >= 0.05


@pytest.mark.parametrize("status,cls", [(400, errors.ServiceError), (401, errors.AuthenticationError),
                                        (404, errors.NotFoundError), (413, errors.ServiceError)])
def test_client_errors_are_never_retried_and_carry_context(status, cls):
    body = {"error": {"code": "BadArgument", "message": f"Invalid argument {KEY}",
                      "details": [{"code": "TableSchemaColumnCountMismatch", "message": "cols"}]}}

    def refuse(method, url, body_, headers, n):
        if url.endswith("swagger.json"):
            return response(404, {})
        return response(status, body, {"x-ms-request-id": "req-42"})

    svc, session = svc_with(refuse, batch_size=4, max_workers=1)
    with pytest.raises(cls) as info:
        svc.score(frame(10), progress=False)
    err = info.value
    assert len([c for c in session.calls if c[0] == "POST"]) == 1
    assert (err.status_code, err.code, err.request_id) == (status, "BadArgument", "req-42")
    assert err.details == [{"code": "TableSchemaColumnCountMismatch", "message": "cols"}]
    assert err.rows == range(0, 3)          # 10 rows in 3 even batches of at most 4
    text = str(err)
    assert "rows 0..2" in text and "TableSchemaColumnCountMismatch" in text
    assert KEY not in text and KEY not in err.body and "***" in text


def test_connection_errors_exhaust_retries_then_raise_with_cause():
    def down(method, url, body, headers, n):
        raise requests.ConnectionError(f"refused http://fake/?key={KEY}")

    svc, session = svc_with(down, retry=RetryPolicy(retries=2, backoff=0.001, deadline=5))
    with pytest.raises(errors.ServiceError) as info:
        svc.score(frame(3), progress=False, check_schema=False)
    assert info.value.status_code is None and info.value.code == "ConnectionError"
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert KEY not in str(info.value.__cause__)
    assert len(session.calls) == 3


def test_retry_after_beyond_the_deadline_gives_up_at_once():
    def limited(method, url, body, headers, n):
        return response(429, {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 60 seconds."},
                        {"Retry-After": "60"})

    svc, session = svc_with(limited, retry=RetryPolicy(retries=5, deadline=5))
    with pytest.raises(errors.ThrottledError) as info:
        svc.score(frame(3), progress=False, check_schema=False)
    assert info.value.retry_after == 60 and len(session.calls) == 1


def test_collect_returns_every_other_row_and_reports_the_failed_batch():
    def bad_batch(method, url, body, headers, n):
        if url.endswith("swagger.json"):
            return response(404, {})
        if "text 12 words" in body.decode():
            return response(400, {"error": {"code": "ModuleExecutionError", "message": "boom"}})
        return doubling(method, url, body, headers, n)

    svc, _ = svc_with(bad_batch, batch_size=5, max_workers=3)
    df = frame(30)
    res = svc.score(df, progress=False, errors="collect")
    assert isinstance(res, ScoreResult) and not res.ok
    assert res.failed_rows == list(range(10, 15))
    assert list(res.output.index) == [f"r{i}" for i in range(30) if not 10 <= i < 15]
    assert res.failed_input.index.tolist() == [f"r{i}" for i in range(10, 15)]
    assert res.failures[0].code == "ModuleExecutionError" and res.failures[0].rows == range(10, 15)
    with pytest.raises(errors.ServiceError, match="rows 10..14"):
        svc.score(df, progress=False)
    with pytest.raises(errors.ServiceError):
        res.raise_for_failures()


# --- schema --------------------------------------------------------------------------------

SWAGGER = {
    "swagger": "2.0",
    "definitions": {
        "ExecutionRequest": {"properties": {
            "Inputs": {"properties": {"input1": {"type": "array", "items": {"$ref": "#/definitions/input1Item"}}}},
            "GlobalParameters": {"$ref": "#/definitions/GlobalParameters"}}},
        "GlobalParameters": {"properties": {"bitsize": {"type": "integer", "format": "int32"}}},
        "input1Item": {"type": "object", "properties": {
            "Col1": {"type": "integer", "format": "int32"}, "Col2": {"type": "string"}}},
        "output1Item": {"type": "object", "properties": {
            "Col2": {"type": "string"}, "Twice": {"type": "integer", "format": "int32"}}},
    },
}


def with_swagger(method, url, body, headers, n):
    if url.endswith("swagger.json"):
        return response(200, SWAGGER)
    return doubling(method, url, body, headers, n)


def test_schema_is_fetched_once_and_checked_before_sending():
    svc, session = svc_with(with_swagger)
    assert svc.schema()["inputs"] == {"input1": {"Col1": {"type": "integer", "format": "int32"},
                                                 "Col2": {"type": "string", "format": None}}}
    assert list(svc.schema()["outputs"]) == ["output1"]
    assert svc.schema()["global_parameters"] == {"bitsize": {"type": "integer", "format": "int32"}}
    svc.score(frame(3)[["Col2", "Col1"]], progress=False)          # reordered columns are fine
    svc.score(frame(3), progress=False)
    assert sum(c[1].endswith("swagger.json") for c in session.calls) == 1
    posts = [c for c in session.calls if c[0] == "POST"]
    with pytest.raises(errors.SchemaError) as info:
        svc.score(frame(3)[["Col2"]], progress=False)
    text = str(info.value)
    assert "expected: Col1 (integer/int32), Col2 (string)" in text and "missing:  Col1" in text
    assert info.value.expected == ["Col1", "Col2"] and info.value.given == ["Col2"]
    bad = frame(3).assign(Col1=["1", "two", "3"])
    with pytest.raises(errors.SchemaError, match=r"'Col1'.*'two' at row 1"):
        svc.score(bad, progress=False)
    with pytest.raises(errors.SchemaError, match="unexpected: extra"):
        svc.score(frame(3).assign(extra=1), progress=False)
    assert len([c for c in session.calls if c[0] == "POST"]) == len(posts)


# --- formats, inputs, outputs, gateway -----------------------------------------------------

def test_swagger_format_global_parameters_several_inputs_and_outputs():
    seen = {}

    def two_ways(method, url, body, headers, n):
        if url.endswith("swagger.json"):
            return response(404, {})
        payload = loads(body)
        seen.setdefault("gp", payload["GlobalParameters"])
        seen.setdefault("url", url)
        frames = from_payload(payload)
        if isinstance(frames, pd.DataFrame):  # one input: echo it
            fmt = "swagger" if "format=swagger" in url else "classic"
            return response(200, to_response(frames, format=fmt))
        main, side = frames["input1"], frames["side"]
        return response(200, to_response({"output1": main.assign(k=len(side)),
                                          "output2": main[["Col1"]] * 10}))

    svc, session = svc_with(two_ways, batch_size=4, max_workers=2)
    side = pd.DataFrame({"v": [1, 2]})
    out = svc.score({"input1": frame(10), "side": side}, batch_input="input1",
                    global_parameters={"bitsize": 3}, progress=False)
    assert set(out) == {"output1", "output2"}
    assert out["output2"]["Col1"].tolist() == [10 * i for i in range(10)]
    assert list(out["output1"].index) == list(frame(10).index) and (out["output1"]["k"] == 2).all()
    assert seen["gp"] == {"bitsize": 3}
    rec = svc.score(frame(6), format="swagger", progress=False)
    assert "format=swagger" in session.calls[-1][1] and rec["Col2"].tolist()[0] == "text 0 words"


def test_gateway_requests_carry_the_subscription_key():
    session = FakeSession(doubling)
    svc = WebService("ws", "svc", gateway_url="http://gw/azureml-demo", subscription_key=SUB,
                     session=session, retry=FAST)
    svc.score(frame(2), progress=False)
    method, url, body, headers = session.calls[-1]
    assert url.startswith("http://gw/azureml-demo/workspaces/ws/services/svc/execute?api-version=2.0")
    assert headers["Ocp-Apim-Subscription-Key"] == SUB and "Authorization" not in headers


def test_invalid_options_fail_before_any_request():
    svc, session = svc_with(doubling)
    with pytest.raises(errors.PayloadError, match="errors must be"):
        svc.score(frame(2), errors="ignore")
    with pytest.raises(errors.PayloadError, match="format must be"):
        svc.score(frame(2), format="csv")
    with pytest.raises(errors.PayloadError, match="batch_input"):
        svc.score({"a": frame(2), "b": frame(2)}, batch_input="c", check_schema=False)
    assert session.calls == []


def test_job_status_accepts_numbers_and_names():
    assert az.JobStatus.parse(2) is az.JobStatus.Failed
    assert az.JobStatus.parse("4") is az.JobStatus.Finished
    assert az.JobStatus.parse("notstarted") is az.JobStatus.NotStarted
    assert az.JobStatus.parse("Canceled") is az.JobStatus.Cancelled
    with pytest.raises(errors.PayloadError, match="StatusCode 7"):
        az.JobStatus.parse(7)


def test_collect_with_several_inputs_gives_back_what_to_retry():
    def fail_second(method, url, body, headers, n):
        if url.endswith("swagger.json"):
            return response(404, {})
        frames = from_payload(loads(body))
        if (frames["input1"]["Col1"] == 5).any():
            return response(503, {"error": {"code": "ServiceUnavailable", "message": "busy"}})
        return response(200, to_response(frames["input1"][["Col1"]]))

    svc, _ = svc_with(fail_second, batch_size=4, max_workers=1,
                      retry=RetryPolicy(retries=1, backoff=0.001, deadline=5))
    side = pd.DataFrame({"v": [1]})
    res = svc.score({"input1": frame(12), "side": side}, batch_input="input1", errors="collect",
                    progress=False)
    assert isinstance(res.failures[0], errors.ThrottledError) and res.failed_rows == [4, 5, 6, 7]
    again = res.failed_input
    assert again["input1"]["Col1"].tolist() == [4, 5, 6, 7] and again["side"] is side
    assert res.output["Col1"].tolist() == [0, 1, 2, 3, 8, 9, 10, 11]


def test_first_failure_stops_the_remaining_batches():
    def first_fails(method, url, body, headers, n):
        if url.endswith("swagger.json"):
            return response(404, {})
        if "text 0 words" in body.decode():
            return response(400, {"error": {"code": "BadArgument", "message": "no"}})
        time.sleep(0.01)
        return doubling(method, url, body, headers, n)

    svc, session = svc_with(first_fails, batch_size=5, max_workers=2)
    with pytest.raises(errors.ServiceError, match="rows 0..4"):
        svc.score(frame(200), progress=False)
    assert len([c for c in session.calls if c[0] == "POST"]) < 10     # not all 40 batches


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 600), min_size=0, max_size=60),
       limit=st.integers(1024, 6000), batch_size=st.integers(1, 50))
def test_every_body_fits_and_every_row_comes_back_once(sizes, limit, batch_size):
    df = pd.DataFrame({"Col1": np.arange(len(sizes)), "Col2": ["w" * k for k in sizes]})
    svc, session = svc_with(doubling, batch_size=batch_size, max_workers=3)
    out = svc.score(df, progress=False, max_request_bytes=limit, check_schema=False)
    bodies = [c[2] for c in session.calls if c[0] == "POST"]
    assert all(len(b) <= limit for b in bodies)
    assert out["Twice"].tolist() == [2 * i for i in range(len(sizes))]
    assert out.index.equals(df.index)


def test_timeouts_are_set_and_a_read_timeout_is_retried():
    def slow_once(method, url, body, headers, n):
        if n == 1:
            raise requests.ReadTimeout("read timed out")
        return doubling(method, url, body, headers, n)

    svc, session = svc_with(slow_once, timeout=(3.05, 30))
    out = svc.score(frame(3), progress=False, check_schema=False)
    assert out["Twice"].tolist() == [0, 2, 4] and session.timeouts == [(3.05, 30), (3.05, 30)]
    svc.score(frame(3), progress=False, check_schema=False, timeout=5)
    assert session.timeouts[-1] == 5
    assert WebService("ws", "svc", KEY, region="ukwest").timeout == (10.0, 120.0)

    def always_slow(method, url, body, headers, n):
        raise requests.ReadTimeout("read timed out")

    svc, _ = svc_with(always_slow, retry=RetryPolicy(retries=1, backoff=0.001))
    with pytest.raises(errors.ServiceError) as caught:
        svc.score(frame(2), progress=False, check_schema=False)
    assert caught.value.code == "Timeout" and caught.value.status_code is None
