"""The local web-service host over real HTTP on loopback: RRS wire format, swagger.json, help, errors.

The docs example runs on the session's offline stack (with Azurite); the error cases run on
small hosts of their own (no Node.js needed), configured for the case they test.
"""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import requests

from azml_nb.local.experiments import Experiment, PythonScript, simple_feature_hashing_experiment
from azml_nb.local.host import FaultInjection, WebServiceHost

pytestmark = pytest.mark.integration

DOCS_BODY = {"Inputs": {"input1": {"ColumnNames": ["Col2"], "Values": [["This is a good day"]]}},
             "GlobalParameters": {}}
FEATURES = [f"Col2_HashingFeature.{i}" for i in range(8)]
EXPECTED = ["1", "1", "2", "2", "0", "2", "0", "1"]


def _auth(svc, key=None):
    return {"Authorization": "Bearer " + (key or svc.api_key), "Content-Type": "application/json"}


def _error(resp, status, code, detail=None):
    """Assert an AzureML error envelope; return its message + detail messages."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    assert "Traceback" not in resp.text
    if detail is not None:
        assert [d["code"] for d in err["details"]] == [detail], err
    return err["message"] + " | " + " | ".join(d["message"] for d in err["details"])


# --- the docs example on the real stack ------------------------------------------------------

def test_docs_example_with_details(local_stack):
    svc = local_stack.service
    resp = requests.post(svc.execute_url, data=json.dumps(DOCS_BODY), headers=_auth(svc), timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"Results": {"output1": {"type": "table", "value": {
        "ColumnNames": ["Col2"] + FEATURES,
        "ColumnTypes": ["String"] + ["Int32"] * 8,
        "Values": [["This is a good day"] + EXPECTED]}}}}


def test_docs_example_without_details_drops_column_types(local_stack):
    svc = local_stack.service
    url = svc.execute_url.replace("&details=true", "")
    resp = requests.post(url, data=json.dumps(DOCS_BODY), headers=_auth(svc), timeout=30)
    assert resp.status_code == 200, resp.text
    value = resp.json()["Results"]["output1"]["value"]
    assert "ColumnTypes" not in value
    assert value["Values"] == [["This is a good day"] + EXPECTED]


def test_docs_example_swagger_format_both_ways(local_stack):
    svc = local_stack.service
    body = {"Inputs": {"input1": [{"Col2": "This is a good day"}]}, "GlobalParameters": {}}
    resp = requests.post(svc.execute_url + "&format=swagger", json=body, headers=_auth(svc), timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"Results": {"output1": [
        {"Col2": "This is a good day", **dict(zip(FEATURES, EXPECTED))}]}}


def test_secondary_key_works_and_keys_are_long_and_distinct(local_stack):
    svc = local_stack.service
    assert len(svc.api_key) >= 64 and svc.api_key != svc.secondary_key
    assert svc.api_key not in repr(svc) and svc.api_key not in repr(local_stack)
    resp = requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc, svc.secondary_key), timeout=30)
    assert resp.status_code == 200


def test_swagger_json_is_valid_swagger_2_with_items_and_example(local_stack):
    from openapi_spec_validator import validate

    svc = local_stack.service
    resp = requests.get(svc.swagger_url, timeout=30)
    assert resp.status_code == 200
    doc = resp.json()
    validate(doc)
    assert doc["swagger"] == "2.0"
    assert doc["definitions"]["input1Item"]["properties"] == {"Col2": {"type": "string"}}
    out = doc["definitions"]["output1Item"]["properties"]
    assert list(out) == ["Col2"] + FEATURES
    assert out["Col2_HashingFeature.0"] == {"type": "integer", "format": "int32"}
    example = doc["definitions"]["ExecutionRequest"]["example"]
    assert example["Inputs"] == {"input1": [{"Col2": "This is a good day"}]}
    # the example request, sent as is, scores
    scored = requests.post(svc.execute_url + "&format=swagger", json=example, headers=_auth(svc), timeout=30)
    assert scored.status_code == 200
    assert [scored.json()["Results"]["output1"][0][f] for f in FEATURES] == EXPECTED


def test_help_page_is_html_without_keys(local_stack):
    svc = local_stack.service
    resp = requests.get(svc.help_url, timeout=30)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "SimpleFeatureHashingExperiment" in resp.text and "Col2_HashingFeature.7" in resp.text
    assert svc.api_key not in resp.text and svc.secondary_key not in resp.text
    index = requests.get(local_stack.base_url + "/", timeout=30)
    assert index.status_code == 200 and f"{svc.path}/help" in index.text and svc.api_key not in index.text


# --- error cases on a host of their own -----------------------------------------------------

def _typed_experiment():
    return Experiment(name="Typed", modules=[PythonScript(lambda df: df.assign(twice=df["n"] * 2), name="Twice")],
                      input_schema={"n": "Int32", "t": "String"},
                      example=pd.DataFrame({"n": [1], "t": ["a"]}))


def _failing_experiment():
    def boom(df):
        if len(df):
            raise ValueError("no rating in row 3")
        return df
    return Experiment(name="Failing", modules=[PythonScript(boom, name="Check ratings")],
                      input_schema={"Col2": "String"}, example=pd.DataFrame({"Col2": []}, dtype=object))


@pytest.fixture(scope="module")
def host():
    h = WebServiceHost(max_body_bytes=10_000).start()
    h.fh = h.publish(simple_feature_hashing_experiment())
    h.typed = h.publish(_typed_experiment())
    try:
        yield h
    finally:
        h.stop()


def test_missing_and_wrong_key_are_401(host):
    svc = host.fh
    _error(requests.post(svc.execute_url, json=DOCS_BODY, timeout=30), 401, "Unauthorized")
    msg = _error(requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc, "wrong"), timeout=30),
                 401, "Unauthorized")
    assert "Invalid credentials provided." in msg
    # the key of another service does not open this one
    _error(requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(host.typed), timeout=30), 401, "Unauthorized")


def test_unknown_workspace_service_and_job_are_404(host):
    svc = host.fh
    for url in (svc.execute_url.replace(svc.workspace, "nosuchworkspace"),
                svc.execute_url.replace(svc.service, "nosuchservice"),
                f"{host.base_url}/nothing/here"):
        msg = _error(requests.post(url, json=DOCS_BODY, headers=_auth(svc), timeout=30), 404, "NotFound")
        assert "nosuch" in msg or "/nothing/here" in msg
    resp = requests.get(f"{host.base_url}{svc.path}/jobs/deadbeef?api-version=2.0", headers=_auth(svc), timeout=30)
    assert "deadbeef" in _error(resp, 404, "NotFound")


def test_wrong_method_is_405(host):
    svc = host.fh
    _error(requests.get(svc.execute_url, headers=_auth(svc), timeout=30), 405, "MethodNotAllowed")


@pytest.mark.parametrize("body, detail, words", [
    (b'{"Inputs": {"input1": ', "InputParseError", ["not valid JSON"]),
    (b'[1, 2]', "InputParseError", ["JSON object"]),
    (b'{"GlobalParameters": {}}', "MissingInput", ["Inputs"]),
    (b'{"Inputs": {"input2": {"ColumnNames": ["Col2"], "Values": [["a"]]}}}', "InputNameNotFound",
     ["input2", "input1"]),
    (b'{"Inputs": {"input1": {"ColumnNames": ["Col1", "Col2"], "Values": [["5", "a"]]}}}',
     "TableSchemaColumnCountMismatch", ["Col1", "expected 1"]),
    (b'{"Inputs": {"input1": {"ColumnNames": ["Text"], "Values": [["a"]]}}}',
     "TableSchemaColumnNameMismatch", ["Text", "Col2"]),
    (b'{"Inputs": {"input1": {"ColumnNames": ["Col2"], "Values": [["a"], ["b", "c"]]}}}',
     "TableSchemaColumnCountMismatch", ["row 1"]),
    (b'{"Inputs": {"input1": [{"Col2": "a"}]}}', "InputParseError", ["format=swagger"]),
    (b'{"Inputs": {"input1": {"ColumnNames": ["Col2"], "Values": [["a"]]}}, '
     b'"GlobalParameters": {"Hashing bitsize": "big"}}', "InvalidGlobalParameter", ["Hashing bitsize", "big"]),
])
def test_bad_requests_are_400_with_detail_codes(host, body, detail, words):
    svc = host.fh
    msg = _error(requests.post(svc.execute_url, data=body, headers=_auth(svc), timeout=30), 400, "BadArgument", detail)
    for word in words:
        assert word in msg


def test_swagger_record_with_wrong_columns_names_the_row(host):
    svc = host.fh
    body = {"Inputs": {"input1": [{"Col2": "a"}, {"Col2": "b", "Col1": "5"}]}}
    msg = _error(requests.post(svc.execute_url + "&format=swagger", json=body, headers=_auth(svc), timeout=30),
                 400, "BadArgument", "TableSchemaColumnCountMismatch")
    assert "row 1" in msg and "Col1" in msg


def test_value_that_does_not_parse_names_column_and_row(host):
    svc = host.typed
    body = {"Inputs": {"input1": {"ColumnNames": ["n", "t"], "Values": [["1", "a"], ["2", "b"], ["two", "c"]]}}}
    msg = _error(requests.post(svc.execute_url, json=body, headers=_auth(svc), timeout=30),
                 400, "BadArgument", "InputParseError")
    assert "'n'" in msg and "row 2" in msg and "two" in msg
    # the same service scores well-typed values, given as strings or numbers, and says the types
    body = {"Inputs": {"input1": {"ColumnNames": ["n", "t"], "Values": [["1", "a"], [2, "b"]]}}}
    resp = requests.post(svc.execute_url, json=body, headers=_auth(svc), timeout=30)
    assert resp.status_code == 200, resp.text
    value = resp.json()["Results"]["output1"]["value"]
    assert value["Values"] == [["1", "a", "2"], ["2", "b", "4"]]
    assert value["ColumnTypes"][0] == "Int32"


def test_global_parameters_set_module_parameters(host):
    svc = host.fh
    body = dict(DOCS_BODY, GlobalParameters={"Hashing bitsize": "4", "Unknown parameter": 1})
    resp = requests.post(svc.execute_url, json=body, headers=_auth(svc), timeout=30)
    assert resp.status_code == 200, resp.text
    value = resp.json()["Results"]["output1"]["value"]
    assert len(value["ColumnNames"]) == 1 + 16
    assert sum(int(v) for v in value["Values"][0][1:]) == 9  # 5 words + 4 bigrams


def test_module_that_raises_is_400_module_execution_error(host):
    svc = host.publish(_failing_experiment(), service="failing")
    try:
        resp = requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc), timeout=30)
        msg = _error(resp, 400, "ModuleExecutionError", "ModuleExecutionError")
        assert "no rating in row 3" in msg and "Check ratings" in msg
        assert resp.json()["error"]["details"][0]["target"] == "Check ratings"
    finally:
        host.unpublish(svc)


def test_module_parameter_out_of_range_is_module_execution_error(host):
    svc = host.fh
    body = dict(DOCS_BODY, GlobalParameters={"Hashing bitsize": 40})
    msg = _error(requests.post(svc.execute_url, json=body, headers=_auth(svc), timeout=30),
                 400, "ModuleExecutionError")
    assert "1..31" in msg and "40" in msg


def test_body_over_the_limit_is_413(host):
    svc = host.fh
    big = {"Inputs": {"input1": {"ColumnNames": ["Col2"], "Values": [["x" * 100]] * 200}}}
    msg = _error(requests.post(svc.execute_url, json=big, headers=_auth(svc), timeout=30), 413, "MemoryQuotaViolation")
    assert "10000" in msg

    def chunks():  # no Content-Length: the limit is enforced while reading
        data = json.dumps(big).encode()
        for i in range(0, len(data), 4096):
            yield data[i:i + 4096]
    _error(requests.post(svc.execute_url, data=chunks(), headers=_auth(svc), timeout=30), 413, "MemoryQuotaViolation")


def test_unencodable_output_is_500_without_traceback(host):
    svc = host.publish(Experiment(name="Odd", modules=[PythonScript(lambda df: df.assign(x=[{"a": 1}] * len(df)))],
                                  input_schema={"Col2": "String"}, example=pd.DataFrame({"Col2": []}, dtype=object)),
                       service="odd")
    try:
        resp = requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc), timeout=30)
        _error(resp, 500, "InternalError")
        assert resp.headers["x-ms-request-id"] in resp.json()["error"]["message"]
    finally:
        host.unpublish(svc)


@pytest.mark.parametrize("body", [b"", b"null", b'"text"', b'{"Inputs": []}', b'{"Inputs": {"input1": 5}}',
                                  b'{"Inputs": {"input1": {"Values": "x"}}}',
                                  b'{"Inputs": {"input1": {"ColumnNames": [1], "Values": [[1]]}}}',
                                  b'{"Inputs": {"input1": {"ColumnNames": ["Col2"], "Values": [[{"a": 1}]]}}}',
                                  b'{"Inputs": {"input1": {"ColumnNames": ["Col2"], "Values": [5]}}}',
                                  b'{"Inputs": {"input1": [5]}}', b'{"Inputs": {"input1": {"ColumnNames": ["Col2"],'
                                  b' "Values": [["a"]]}}, "GlobalParameters": [1]}', b"\xff\xfe"])
def test_odd_bodies_get_400_never_500(host, body):
    svc = host.fh
    url = svc.execute_url + ("&format=swagger" if b"[5]}" in body else "")
    resp = requests.post(url, data=body, headers=_auth(svc), timeout=30)
    _error(resp, 400, "BadArgument")


def test_api_version_other_than_2_0_is_rejected(host):
    svc = host.fh
    url = svc.execute_url.replace("api-version=2.0", "api-version=1.0")
    assert "1.0" in _error(requests.post(url, json=DOCS_BODY, headers=_auth(svc), timeout=30), 400, "BadArgument")


@pytest.mark.parametrize("tail", ["/execute?api-version=2.0", "/jobs?api-version=2.0"])
def test_deeply_nested_json_is_400_not_500(host, tail):
    svc = host.fh
    body = b"[" * 4000 + b"]" * 4000          # valid JSON nested deeper than Python's recursion limit
    resp = requests.post(svc._url(tail), data=body, headers=_auth(svc), timeout=30)
    _error(resp, 400, "BadArgument", "InputParseError")


@pytest.mark.parametrize("value", ['"1e400"', '"-Infinity"', "1e400"])   # JSON text of the cell
def test_infinite_double_is_400_naming_column_and_row(host, value):
    svc = host.publish(Experiment(name="Doubles", modules=[PythonScript(lambda df: df)], input_schema={"x": "Double"},
                                  example=pd.DataFrame({"x": [0.5]})), service="doubles")
    try:
        body = '{"Inputs": {"input1": {"ColumnNames": ["x"], "Values": [["1.5"], [%s]]}}}' % value
        msg = _error(requests.post(svc.execute_url, data=body, headers=_auth(svc), timeout=30),
                     400, "BadArgument", "InputParseError")
        assert "'x'" in msg and "row 1" in msg
    finally:
        host.unpublish(svc)


def test_a_stopped_host_can_be_started_again():
    h = WebServiceHost()
    svc = h.publish(simple_feature_hashing_experiment())
    try:
        for _ in range(2):
            h.start()
            resp = requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc), timeout=30)
            assert resp.status_code == 200, resp.text
            h.stop()          # batch jobs after a restart: tests/test_local_bes.py
    finally:
        h.stop()


# --- concurrency, timeouts, fault injection -------------------------------------------------

def _blocking_experiment(gate: threading.Event, started: threading.Semaphore):
    def wait(df):
        if len(df):  # publishing runs the empty example: let that through
            started.release()
            gate.wait(20)
        return df
    return Experiment(name="Blocking", modules=[PythonScript(wait, name="Wait")], input_schema={"Col2": "String"},
                      example=pd.DataFrame({"Col2": []}, dtype=object))


def test_more_than_max_concurrent_calls_is_503_too_many_concurrent_requests():
    gate, started = threading.Event(), threading.Semaphore(0)
    with WebServiceHost(max_concurrent_calls=2).start() as h:
        svc = h.publish(_blocking_experiment(gate, started))
        try:
            with ThreadPoolExecutor(2) as pool:
                futures = [pool.submit(requests.post, svc.execute_url, json=DOCS_BODY, headers=_auth(svc),
                                       timeout=30) for _ in range(2)]
                assert started.acquire(timeout=10) and started.acquire(timeout=10)
                resp = requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc), timeout=30)
                gate.set()
                assert [f.result().status_code for f in futures] == [200, 200]
        finally:
            gate.set()
        msg = _error(resp, 503, "ServiceUnavailable", "TooManyConcurrentRequests")
        assert "2" in msg
        # once the calls are done, there is room again
        assert requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc), timeout=30).status_code == 200


def test_call_longer_than_request_timeout_is_408():
    gate, started = threading.Event(), threading.Semaphore(0)
    with WebServiceHost(request_timeout=0.5).start() as h:
        svc = h.publish(_blocking_experiment(gate, started))
        try:
            resp = requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc), timeout=30)
        finally:
            gate.set()
        _error(resp, 408, "RequestTimeout")


def test_fault_injection_throttle_timeout_drop(host):
    svc = host.fh
    try:
        host.faults = FaultInjection(rate=1.0, kinds=("throttle",))
        _error(requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc), timeout=30),
               503, "ServiceUnavailable", "RequestThrottled")
        host.faults = FaultInjection(rate=1.0, kinds=("timeout",))
        _error(requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc), timeout=30), 504, "GatewayTimeout")
        host.faults = FaultInjection(rate=1.0, kinds=("drop",))
        with pytest.raises(requests.exceptions.RequestException):
            requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc), timeout=30)
        host.faults = FaultInjection(rate=0.5, seed=7)
        outcomes = []
        for _ in range(40):
            try:
                outcomes.append(requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc), timeout=30).status_code)
            except requests.exceptions.RequestException:
                outcomes.append("dropped")
        assert set(outcomes) <= {200, 503, 504, "dropped"}
        assert 5 <= outcomes.count(200) <= 35 and len(set(outcomes)) >= 3
    finally:
        host.faults = None
    assert requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc), timeout=30).status_code == 200


def test_injected_faults_context_manager_restores_the_setting(host):
    svc = host.fh
    with host.injected_faults(1.0, kinds=("timeout",), seed=3) as faults:
        assert host.faults is faults
        _error(requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc), timeout=30), 504, "GatewayTimeout")
    assert host.faults is None
    assert requests.post(svc.execute_url, json=DOCS_BODY, headers=_auth(svc), timeout=30).status_code == 200


def test_fault_injection_settings_are_checked():
    with pytest.raises(ValueError, match="rate"):
        FaultInjection(rate=1.5)
    with pytest.raises(ValueError, match="kinds"):
        FaultInjection(rate=0.1, kinds=("explode",))


def test_host_runs_many_calls_in_parallel_without_errors(host):
    svc = host.fh
    frame = {"Inputs": {"input1": {"ColumnNames": ["Col2"], "Values": [[f"review number {i} is fine"] for i in range(50)]}}}
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: requests.post(svc.execute_url, json=frame, headers=_auth(svc),
                                                      timeout=30).status_code, range(40)))
    assert codes == [200] * 40
