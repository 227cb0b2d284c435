"""The local APIM gateway over real HTTP, in front of the real local web-service host.

What APIM answers on the wire (DESIGN.md) is asserted against literal JSON here, so the
gateway and the client cannot drift together.
"""
from __future__ import annotations

import io
import json
import time
import uuid

import pandas as pd
import pytest
import requests

from azml_nb.local.gateway import (BACKEND_KEY_POLICY, INVALID_KEY, MISSING_KEY, USAGE_COLUMNS,
                                   Gateway, PolicyError, demo_gateway)

pytestmark = pytest.mark.integration

MISSING = {"statusCode": 401, "message": MISSING_KEY}
INVALID = {"statusCode": 401, "message": INVALID_KEY}
# the exact texts of DESIGN.md, so that a change of the constants above cannot go unseen
assert MISSING["message"] == ("Access denied due to missing subscription key. Make sure to include "
                              "subscription key when making requests to an API.")
assert INVALID["message"] == ("Access denied due to invalid subscription key. Make sure to provide a "
                              "valid key for an active subscription.")
TEXTS = pd.DataFrame({"Col2": ["This is a good day", "not good at all"]})
RRS_BODY = {"Inputs": {"input1": {"ColumnNames": ["Col2"],
                                  "Values": [["This is a good day"], ["not good at all"]]}},
            "GlobalParameters": {}}


class FakeClock:
    """A clock the test moves by hand, so that window tests neither sleep nor flake."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def backend(request):
    """(base_url, workspace, service, api_key, storage connection string) of the real local host."""
    try:
        stack = request.getfixturevalue("local_stack")
    except pytest.FixtureLookupError:
        stack = None
    if stack is not None:
        info = stack.info()
        yield info["base_url"], info["workspace"], info["service"], info["api_key"], \
            info["storage_connection_string"]
        return
    from azml_nb.local.azurite import Azurite, node_available
    from azml_nb.local.experiments import simple_feature_hashing_experiment
    from azml_nb.local.host import WebServiceHost

    host = WebServiceHost().start()
    svc = host.publish(simple_feature_hashing_experiment())
    azurite = Azurite().start() if node_available() else None
    try:
        yield host.base_url, svc.workspace, svc.service, svc.api_key, \
            azurite.connection_string if azurite else None
    finally:
        host.stop()
        if azurite:
            azurite.stop()


@pytest.fixture(scope="module")
def gw(backend):
    base_url, _ws, _svc, api_key, _cs = backend
    gateway = demo_gateway(base_url, api_key).start()
    yield gateway
    gateway.stop()


def _path(backend, tail: str) -> str:
    _base, ws, svc, _key, _cs = backend
    return f"/workspaces/{ws}/services/{svc}{tail}"


def _key(gw, sub="demo-unlimited") -> dict:
    return {"Ocp-Apim-Subscription-Key": gw.subscriptions[sub].primary_key}


def test_five_operations_and_swagger_through_the_gateway(gw, backend):
    base_url, _ws, _svc, api_key, conn = backend
    api = gw.api_url()
    # RRS Execute: the same body as a direct call, with only the subscription key
    url = _path(backend, "/execute?api-version=2.0&details=true")
    via = requests.post(api + url, json=RRS_BODY, headers=_key(gw), timeout=30)
    direct = requests.post(base_url + url, json=RRS_BODY, timeout=30,
                           headers={"Authorization": f"Bearer {api_key}"})
    assert via.status_code == 200, via.text
    assert via.json() == direct.json()
    assert "Col2_HashingFeature.0" in via.json()["Results"]["output1"]["value"]["ColumnNames"]
    # swagger.json passes through
    sw = requests.get(api + _path(backend, "/swagger.json"), headers=_key(gw), timeout=30)
    assert sw.status_code == 200 and "input1Item" in sw.json()["definitions"]
    if conn is None:
        pytest.skip("BES needs Azurite (Node.js): install Node.js 20 and run `npm ci`")
    # BES: submit, start, status until finished, delete
    from azure.storage.blob import BlobServiceClient

    container = f"gw{uuid.uuid4().hex[:10]}"
    blobs = BlobServiceClient.from_connection_string(conn)
    blobs.create_container(container)
    blobs.get_blob_client(container, "in.csv").upload_blob(TEXTS.to_csv(index=False).encode())
    job = {"Inputs": {"input1": {"ConnectionString": conn, "RelativeLocation": f"/{container}/in.csv"}},
           "Outputs": {"output1": {"ConnectionString": conn, "RelativeLocation": f"/{container}/out.csv"}},
           "GlobalParameters": {}}
    submitted = requests.post(api + _path(backend, "/jobs?api-version=2.0"), json=job, headers=_key(gw),
                              timeout=30)
    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()
    assert isinstance(job_id, str) and job_id
    started = requests.post(api + _path(backend, f"/jobs/{job_id}/start?api-version=2.0"),
                            headers=_key(gw), timeout=30)
    assert started.status_code in (200, 202, 204), started.text
    deadline = time.monotonic() + 30
    while True:
        status = requests.get(api + _path(backend, f"/jobs/{job_id}?api-version=2.0"),
                              headers=_key(gw), timeout=30)
        assert status.status_code == 200, status.text
        code = status.json()["StatusCode"]
        if code in (4, "Finished", 2, "Failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert code in (4, "Finished"), status.text
    out = status.json()["Results"]["output1"]
    frame = pd.read_csv(io.StringIO(requests.get(out["BaseLocation"] + out["RelativeLocation"]
                                                 + out["SasBlobToken"], timeout=30).text))
    assert len(frame) == 2
    deleted = requests.delete(api + _path(backend, f"/jobs/{job_id}?api-version=2.0"),
                              headers=_key(gw), timeout=30)
    assert deleted.status_code in (200, 202, 204), deleted.text
    ops = set(gw.usage.frame()["operation"].dropna())
    assert {"rrs-execute", "service-swagger", "bes-submit", "bes-start", "bes-status",
            "bes-delete"} <= ops


def test_missing_invalid_and_suspended_keys_get_apims_401(gw, backend):
    url = gw.api_url() + _path(backend, "/execute?api-version=2.0&details=true")
    missing = requests.post(url, json=RRS_BODY, timeout=30)
    assert missing.status_code == 401 and missing.json() == MISSING
    assert missing.headers["content-type"] == "application/json"
    invalid = requests.post(url, json=RRS_BODY, timeout=30, headers={"Ocp-Apim-Subscription-Key": "0" * 32})
    assert invalid.status_code == 401 and invalid.json() == INVALID
    extra = gw.subscribe("unlimited", subscription_id=f"tmp-{uuid.uuid4().hex[:6]}")
    headers = {"Ocp-Apim-Subscription-Key": extra.secondary_key}
    assert requests.post(url, json=RRS_BODY, headers=headers, timeout=30).status_code == 200
    extra.suspend()
    suspended = requests.post(url, json=RRS_BODY, headers=headers, timeout=30)
    assert suspended.status_code == 401 and suspended.json() == INVALID
    extra.activate()
    assert requests.post(url, json=RRS_BODY, headers=headers, timeout=30).status_code == 200


def test_key_regeneration_retires_the_old_key(gw, backend):
    url = gw.api_url() + _path(backend, "/swagger.json")
    sub = gw.subscribe("unlimited", subscription_id=f"regen-{uuid.uuid4().hex[:6]}")
    old = sub.primary_key
    new = sub.regenerate_key("primary")
    assert new != old and sub.primary_key == new
    assert requests.get(url, headers={"Ocp-Apim-Subscription-Key": old}, timeout=30).json() == INVALID
    assert requests.get(url, headers={"Ocp-Apim-Subscription-Key": new}, timeout=30).status_code == 200
    assert old not in repr(sub) and new not in repr(sub)


def test_query_parameter_key_and_header_precedence(gw, backend):
    url = gw.api_url() + _path(backend, "/swagger.json")
    good, bad = gw.subscriptions["demo-unlimited"].primary_key, "f" * 32
    assert requests.get(url, params={"subscription-key": good}, timeout=30).status_code == 200
    # the header wins over the query parameter, both ways
    r = requests.get(url, params={"subscription-key": bad}, headers={"Ocp-Apim-Subscription-Key": good},
                     timeout=30)
    assert r.status_code == 200
    r = requests.get(url, params={"subscription-key": good}, headers={"Ocp-Apim-Subscription-Key": bad},
                     timeout=30)
    assert r.status_code == 401 and r.json() == INVALID


def test_unmatched_requests_get_apims_404(gw, backend):
    api = gw.api_url()
    for method, url in [("GET", api + "/nothing/here"),
                        ("PUT", api + _path(backend, "/execute?api-version=2.0&details=true")),
                        # a query parameter of the template is required, as in APIM
                        ("POST", api + _path(backend, "/execute?api-version=2.0")),
                        ("GET", gw.url + "/other-api" + _path(backend, "/swagger.json"))]:
        r = requests.request(method, url, headers=_key(gw), json={}, timeout=30)
        assert r.status_code == 404, (method, url)
        assert r.json() == {"statusCode": 404, "message": "Resource not found"}


def test_rate_limit_lets_exactly_five_through_per_window(backend):
    base_url, _ws, _svc, api_key, _cs = backend
    clock = FakeClock()
    gw = demo_gateway(base_url, api_key, clock=clock, starter_policy=(
        '<policies><inbound><base /><rate-limit calls="5" renewal-period="10" /></inbound></policies>'))
    with gw.start():
        url = gw.api_url() + _path(backend, "/execute?api-version=2.0&details=true")
        headers = _key(gw, "demo-starter")

        def call():
            return requests.post(url, json=RRS_BODY, headers=headers, timeout=30)

        assert [call().status_code for _ in range(5)] == [200] * 5
        for _ in range(2):
            refused = call()
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "10"
            assert refused.json() == {"statusCode": 429,
                                      "message": "Rate limit is exceeded. Try again in 10 seconds."}
        clock.now += 6.5                            # the window slides: 3.5 s left, rounded up
        refused = call()
        assert refused.headers["Retry-After"] == "4"
        assert refused.json()["message"] == "Rate limit is exceeded. Try again in 4 seconds."
        clock.now += 3.5                            # exactly when Retry-After said
        assert [call().status_code for _ in range(6)] == [200] * 5 + [429]
        # other subscriptions have their own counters
        assert requests.post(url, json=RRS_BODY, headers=_key(gw), timeout=30).status_code == 200
        usage = gw.usage.frame()
        assert usage["outcome"].value_counts().to_dict() == {"success": 11, "blocked": 4}


def test_quota_answers_403_until_the_window_renews(backend):
    base_url, _ws, _svc, api_key, _cs = backend
    clock = FakeClock()
    gw = demo_gateway(base_url, api_key, clock=clock, starter_policy=(
        '<policies><inbound><base /><quota calls="3" renewal-period="3600" /></inbound></policies>'))
    with gw.start():
        url = gw.api_url() + _path(backend, "/swagger.json")
        headers = _key(gw, "demo-starter")
        assert [requests.get(url, headers=headers, timeout=30).status_code for _ in range(3)] == [200] * 3
        clock.now += 567.5
        over = requests.get(url, headers=headers, timeout=30)
        assert over.status_code == 403
        assert over.json() == {"statusCode": 403, "message": "Out of call volume quota. "
                               "Quota will be replenished in 00:50:33."}
        assert over.headers["Retry-After"] == "3033"
        clock.now += 3033
        assert requests.get(url, headers=headers, timeout=30).status_code == 200


def test_backend_key_never_reaches_the_client(gw, backend):
    _base, _ws, _svc, api_key, _cs = backend
    api = gw.api_url()
    answers = [
        requests.post(api + _path(backend, "/execute?api-version=2.0&details=true"), json=RRS_BODY,
                      headers=_key(gw), timeout=30),
        # errors of the backend (bad body, unknown service) and of the gateway
        requests.post(api + _path(backend, "/execute?api-version=2.0&details=true"), data=b"{not json",
                      headers=_key(gw), timeout=30),
        requests.get(api + "/workspaces/x/services/y/jobs/z?api-version=2.0", headers=_key(gw), timeout=30),
        requests.get(api + _path(backend, "/swagger.json"), timeout=30),
    ]
    assert [a.status_code for a in answers][:1] == [200] and answers[1].status_code == 400
    for answer in answers:
        assert api_key not in answer.text
        assert all(api_key not in f"{k}: {v}" for k, v in answer.headers.items())
    usage = gw.usage.frame()
    assert list(usage.columns) == USAGE_COLUMNS
    keys = [api_key] + [k for s in gw.subscriptions.values() for k in (s.primary_key, s.secondary_key)]
    dumped = usage.to_csv() + json.dumps(gw.usage.records(), default=str) + repr(gw)
    assert not any(k in dumped for k in keys)
    assert "azureml-api-key" in gw.named_values() and gw.named_values()["azureml-api-key"] == "***"


def test_forwarded_request_has_backend_key_and_no_subscription_key():
    """A recording backend shows what the gateway forwards (the local host keeps no such log)."""
    from azml_nb.local._server import serve

    seen = []

    async def recorder(scope, receive, send):
        if scope["type"] != "http":
            return
        seen.append((scope["path"], scope["query_string"].decode(), dict(scope["headers"]),
                     scope.get("raw_path")))
        body = json.dumps({"echo": dict((k.decode(), v.decode()) for k, v in scope["headers"])}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"x-echo-auth", dict(scope["headers"]).get(b"authorization", b""))]})
        await send({"type": "http.response.body", "body": body})

    with serve(recorder, lifespan="off") as backend:
        gw = demo_gateway(backend.url, "backend-secret-123")
        with gw.start():
            key = gw.subscriptions["demo-unlimited"].primary_key
            url = gw.api_url() + "/workspaces/w/services/s/jobs/j?api-version=2.0&x=1"
            r1 = requests.get(url + f"&subscription-key={key}", timeout=30)
            r2 = requests.get(url, headers={"Ocp-Apim-Subscription-Key": key}, timeout=30)
            r3 = requests.get(gw.api_url() + "/workspaces/w%20x/services/s/swagger.json",
                              headers={"Ocp-Apim-Subscription-Key": key}, timeout=30)
    assert r1.status_code == r2.status_code == r3.status_code == 200
    assert seen.pop()[3] == b"/workspaces/w%20x/services/s/swagger.json"   # forwarded as the client encoded it
    for path, query, headers, _raw in seen:
        assert path == "/workspaces/w/services/s/jobs/j"
        assert query == "api-version=2.0&x=1"           # subscription-key stripped, the rest kept
        assert headers[b"authorization"] == b"Bearer backend-secret-123"
        assert b"ocp-apim-subscription-key" not in headers
        assert key not in query
    # even a backend that echoes the key cannot hand it to the client
    for r in (r1, r2):
        assert "backend-secret-123" not in r.text and r.headers["x-echo-auth"] == "Bearer ***"


def test_a_request_the_client_abandons_mid_body_is_not_forwarded():
    import socket

    from azml_nb.local._server import serve

    seen = []

    async def recorder(scope, receive, send):
        if scope["type"] != "http":
            return
        seen.append((await receive()).get("body", b""))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    with serve(recorder, lifespan="off") as backend:
        gw = demo_gateway(backend.url, "backend-secret-123")
        with gw.start():
            key = gw.subscriptions["demo-unlimited"].primary_key
            path = "/" + gw.api_url().split("/", 3)[3] + "/workspaces/w/services/s/jobs?api-version=2.0"
            with socket.create_connection((gw.server.host, gw.server.port)) as conn:
                conn.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nOcp-Apim-Subscription-Key: {key}\r\n"
                             "Content-Length: 1000\r\n\r\n".encode() + b'{"Inputs": {"inp')
                time.sleep(0.2)
            time.sleep(0.3)
            complete = requests.post(gw.api_url() + "/workspaces/w/services/s/jobs?api-version=2.0", data=b"{}",
                                     headers={"Ocp-Apim-Subscription-Key": key}, timeout=30)
    assert complete.status_code == 200
    assert seen == [b"{}"]                     # the half-sent body never reached the backend


def test_usage_report_like_the_reports_api(backend):
    base_url, _ws, _svc, api_key, _cs = backend
    gw = demo_gateway(base_url, api_key, starter_policy=(
        '<policies><inbound><base /><rate-limit calls="2" renewal-period="60" /></inbound></policies>'))
    with gw.start():
        url = gw.api_url() + _path(backend, "/execute?api-version=2.0&details=true")
        for _ in range(3):
            requests.post(url, json=RRS_BODY, headers=_key(gw, "demo-starter"), timeout=30)
        requests.post(url, data=b"[]", headers=_key(gw), timeout=30)          # 400 from the backend
        requests.post(url, json=RRS_BODY, timeout=30)                          # 401
    by_product = gw.usage.report(by="product").set_index("product", drop=False)
    starter = by_product.loc["starter"]
    assert (starter.callCountSuccess, starter.callCountBlocked, starter.callCountFailed,
            starter.callCountTotal) == (2, 1, 0, 3)
    assert by_product.loc["unlimited"].callCountFailed == 1
    records = gw.usage.records()
    assert starter.bandwidth == sum(r["request_bytes"] + r["response_bytes"] for r in records
                                    if r["product"] == "starter")
    by_op = gw.usage.report(by="operation", as_frame=False)
    assert by_op == [{**by_op[0], "operation": "rrs-execute", "callCountTotal": 5}]
    assert by_op[0]["serviceTimeAvg"] > 0 and by_op[0]["apiTimeAvg"] > 0
    reached = [r for r in records if r["service_time_ms"] == r["service_time_ms"]]   # not NaN
    assert len(reached) == 3 and all(r["api_time_ms"] >= r["service_time_ms"] for r in reached)
    by_time = gw.usage.report(by=["time", "subscription"], interval="PT15M")
    assert by_time["callCountTotal"].sum() == 5
    assert str(by_time["time"].dt.tz) == "UTC" and (by_time["time"].dt.minute % 15 == 0).all()
    with pytest.raises(ValueError, match="by='region'"):
        gw.usage.report(by="region")


@pytest.mark.parametrize("xml, match", [
    ('<policies><inbound><cors /></inbound></policies>', "<cors> is not supported"),
    ('<policies><inbound><rate-limit calls="5" renewal-period="301" /></inbound></policies>',
     "maximum of 300 seconds"),
    ('<policies><inbound><rate-limit calls="five" renewal-period="10" /></inbound></policies>',
     "not a whole number"),
    ('<policies><inbound><quota calls="5" renewal-period="10" bandwidth="100" /></inbound></policies>',
     "bandwidth"),
    ('<policies><inbound><rate-limit calls="5" renewal-period="10" retry-after="x" /></inbound></policies>',
     "attribute 'retry-after'"),
    ('<policies><inbound><set-header name="Authorization"><value>Bearer {{nope}}</value></set-header>'
     '</inbound></policies>', r"\{\{nope\}\} refers to a named value"),
    ('<policies><inbound><set-header name="X"><value>@(context.Request.Url)</value></set-header>'
     '</inbound></policies>', "policy expressions"),
    ('<policies><inbound><rate-limit-by-key calls="1" renewal-period="10" counter-key="@(x)" />'
     '</inbound></policies>', "evaluates only"),
    ('<policies><outbound><rate-limit calls="1" renewal-period="10" /></outbound></policies>',
     "in <outbound>"),
    ('<inbound />', "root element must be <policies>"),
    ('<policies><inbound>', "not well-formed"),
])
def test_unknown_or_unsupported_policies_are_refused_at_load(xml, match):
    gw = Gateway()
    api = gw.add_api("A", "http://127.0.0.1:9", "a")
    with pytest.raises(PolicyError, match=match):
        api.set_policy(xml)
    with pytest.raises(PolicyError, match="product 'p'"):
        gw.add_product("p", "P", policy=xml)


def test_rate_limit_by_key_and_operation_scope_policies(backend):
    base_url, _ws, _svc, api_key, _cs = backend
    clock = FakeClock()
    gw = demo_gateway(base_url, api_key, clock=clock)
    api = gw.api("azureml-demo")
    # one counter shared by every subscription, on the swagger operation only
    api.set_policy('<policies><inbound><base /><rate-limit-by-key calls="1" renewal-period="30" '
                   'counter-key="everyone" /></inbound></policies>', operation="service-swagger")
    with gw.start():
        url = gw.api_url() + _path(backend, "/swagger.json")
        assert requests.get(url, headers=_key(gw), timeout=30).status_code == 200
        second = requests.get(url, headers=_key(gw, "demo-starter"), timeout=30)
        assert second.status_code == 429 and second.headers["Retry-After"] == "30"
        # the operation's <base /> kept the API policy: the backend key is still added
        assert requests.post(gw.api_url() + _path(backend, "/execute?api-version=2.0&details=true"),
                             json=RRS_BODY, headers=_key(gw), timeout=30).status_code == 200


def test_api_policy_without_base_drops_the_backend_key(backend):
    base_url, _ws, _svc, api_key, _cs = backend
    gw = demo_gateway(base_url, api_key)
    api = gw.api("azureml-demo")
    assert api.policies.xml == BACKEND_KEY_POLICY
    api.set_policy('<policies><inbound><base /></inbound></policies>')   # no set-header any more
    with gw.start():
        r = requests.post(gw.api_url() + _path(backend, "/execute?api-version=2.0&details=true"),
                          json=RRS_BODY, headers=_key(gw), timeout=30)
    assert r.status_code == 401 and "error" in r.json()            # the host's own 401


def test_backend_down_is_a_gateway_502_and_recorded_as_failed():
    gw = demo_gateway("http://127.0.0.1:9", "k")                       # nothing listens on port 9
    with gw.start():
        r = requests.get(gw.api_url() + "/workspaces/w/services/s/swagger.json",
                         headers=_key(gw), timeout=30)
    assert r.status_code == 502 and r.json()["statusCode"] == 502
    assert gw.usage.records()[-1]["outcome"] == "failed"


def test_configuration_errors_name_the_problem():
    gw = Gateway("x")
    api = gw.add_api("A", "http://127.0.0.1:9", "a")
    with pytest.raises(ValueError, match="already used"):
        gw.add_api("B", "http://127.0.0.1:9", "a")
    with pytest.raises(ValueError, match="http"):
        gw.add_api("B", "ftp://h", "b")
    with pytest.raises(ValueError, match="must start with '/'"):
        api.add_operation("GET", "items", "Items")
    with pytest.raises(KeyError, match="no product 'gold'"):
        gw.subscribe("gold")
    with pytest.raises(ValueError, match="no such operation"):
        api.set_policy("<policies />", operation="nope")


def test_chunked_and_empty_backend_answers_pass_through_intact():
    """The gateway's own HTTP/1.1 client: chunked bodies, 204 without a body, keep-alive reuse."""
    from azml_nb.local._server import serve

    big = b"".join(b"%05d," % i for i in range(40_000))              # 240 kB in many chunks

    async def backend(scope, receive, send):
        if scope["type"] != "http":
            return
        if scope["method"] == "DELETE":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200,        # no length: chunked
                    "headers": [(b"content-type", b"text/plain"), (b"x-backend", b"yes")]})
        for i in range(0, len(big), 7_000):
            await send({"type": "http.response.body", "body": big[i:i + 7_000], "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with serve(backend, lifespan="off") as server:
        gw = demo_gateway(server.url, "k")
        with gw.start():
            base = gw.api_url() + "/workspaces/w/services/s/jobs/j?api-version=2.0"
            session = requests.Session()
            for _ in range(3):                                           # the same pooled connection
                got = session.get(base, headers=_key(gw), timeout=30)
                assert got.status_code == 200 and got.content == big
                assert got.headers["x-backend"] == "yes" and "transfer-encoding" not in got.headers
                assert got.headers["content-length"] == str(len(big))
                gone = session.delete(base, headers=_key(gw), timeout=30)
                assert gone.status_code == 204 and gone.content == b""
    assert gw.usage.frame()["response_bytes"].tolist() == [len(big), 0] * 3
