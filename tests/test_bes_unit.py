"""Unit tests of the BES poller against a fake session and a fake blob store (no Azurite)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import requests
import urllib3

from azml_nb import bes, errors
from azml_nb.bes import JobStatus
from azml_nb.service import RetryPolicy, WebService

from test_service import FakeSession, response

KEY = "api-KEY-0123456789abcdef"
CS = "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=SECRETKEY==;BlobEndpoint=http://blob/acct;"
SAS = "?sv=2025-11-05&sig=SIGNATURE123"
SWAGGER = {"definitions": {"output1Item": {"type": "object", "properties": {
    "Col2": {"type": "string"}, "n": {"type": "integer", "format": "int32"}}}}}


class FakeStore:
    container = "jobs"
    connection_string = CS
    secrets = [CS, "SECRETKEY=="]

    def __init__(self):
        self.blobs: dict[str, bytes] = {}

    def relative_location(self, name):
        return f"/{self.container}/{name}"

    def upload_frame(self, name, frame):
        self.blobs[name] = frame.to_csv(index=False).encode()
        return self.relative_location(name)

    def delete(self, name):
        return self.blobs.pop(name, None) is not None


class FakeBES:
    """Answers submit/start/status/delete from a script of statuses."""

    def __init__(self, statuses, details=None):
        self.statuses = list(statuses)
        self.details = details
        self.submitted = None

    def __call__(self, method, url, body, headers, n):
        if url.endswith("swagger.json"):
            return response(200, SWAGGER)
        if url.startswith("http://blob/"):
            assert "Authorization" not in headers
            return response(200, b"Col2,n\nhello world,3\n,4\n")
        if method == "POST" and "/jobs?" in url:
            self.submitted = json.loads(body)
            return response(200, "job-1")
        if method == "POST" and url.endswith("/start?api-version=2.0"):
            return response(200)
        if method == "DELETE":
            return response(200)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        results = None
        if status in (4, "Finished"):
            results = {"output1": {"ConnectionString": CS, "RelativeLocation": "/jobs/out.csv",
                                   "BaseLocation": "http://blob/acct/", "SasBlobToken": SAS}}
        return response(200, {"StatusCode": status, "Results": results, "Details": self.details})


@pytest.fixture
def sleeps(monkeypatch):
    waited = []
    monkeypatch.setattr(bes.time, "sleep", waited.append)
    return waited


def service(handler):
    session = FakeSession(handler)
    return WebService("ws", "svc", KEY, base_url="http://fake", session=session,
                      retry=RetryPolicy(retries=0)), session


def test_submit_uploads_csv_and_sends_the_bes_body(sleeps):
    fake = FakeBES([1, "Running", 4])
    svc, session = service(fake)
    store = FakeStore()
    job = svc.submit_batch(pd.DataFrame({"Col2": ["hello world"]}), storage=store,
                           global_parameters={"N-grams": 1})
    assert job.id == "job-1" and job.blobs[0] in store.blobs
    assert store.blobs[job.blobs[0]] == b"Col2\nhello world\n"
    body = fake.submitted
    assert body["Inputs"]["input1"] == {"ConnectionString": CS, "RelativeLocation": f"/jobs/{job.blobs[0]}"}
    assert body["Outputs"]["output1"]["RelativeLocation"].endswith("/output1.csv")
    assert body["GlobalParameters"] == {"N-grams": 1}
    assert [c[1].split("?")[0].rsplit("/", 1)[-1] for c in session.calls if c[0] == "POST"] == ["jobs", "start"]
    out = job.result(progress=False)
    assert out["n"].dtype == "int32" and out["n"].tolist() == [3, 4]     # typed from swagger.json
    assert sleeps == [0.5, 0.75]                                          # polling backs off
    assert job.status is JobStatus.Finished and job.done()


def test_failed_job_raises_with_details_and_hides_secrets(sleeps):
    fake = FakeBES([0, 2], details=f"Input blob not found (account key SECRETKEY==, sas {SAS})")
    svc, _ = service(fake)
    job = svc.job("job-9", storage=FakeStore())
    with pytest.raises(errors.BatchJobError) as caught:
        job.wait(progress=False)
    err = caught.value
    assert err.status is JobStatus.Failed and err.job_id == "job-9" and err.code == "Failed"
    assert "Input blob not found" in str(err) and "SECRETKEY" not in str(err)
    assert "Input blob not found" in err.details[0]["message"]
    assert job.wait(progress=False, raise_on_failure=False) is JobStatus.Failed


def test_timeout_returns_the_status_and_result_raises_timeout(sleeps, monkeypatch):
    clock = iter(range(0, 10_000, 5))
    monkeypatch.setattr(bes.time, "monotonic", lambda: next(clock))
    svc, _ = service(FakeBES(["Running"]))
    job = svc.job("job-2")
    assert job.wait(timeout=12, progress=False) is JobStatus.Running
    with pytest.raises(TimeoutError, match=r"svc.job\('job-2'\)"):
        job.result(timeout=12, progress=False)


def test_cancelled_job_that_the_service_forgot_reads_as_cancelled(sleeps):
    calls = {"n": 0}

    def forgetful(method, url, body, headers, n):
        if method == "DELETE":
            calls["n"] += 1
            return response(200)
        return response(404, {"error": {"code": "NotFound", "message": "Job 'j' was not found."}})

    svc, _ = service(forgetful)
    job = svc.job("j")
    with pytest.raises(errors.NotFoundError):
        job.status
    job.cancel()
    assert job.status is JobStatus.Cancelled
    job.delete()                 # already gone: still fine
    assert calls["n"] == 2


def _refused_connection() -> requests.ConnectionError:
    reason = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection")
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/jobs", reason))


@pytest.mark.parametrize("failure, sent_again", [
    (_refused_connection, True),                                  # never reached the service
    (lambda: requests.ConnectTimeout("connect timed out"), True),
    (lambda: response(503, {"error": {"code": "ServiceUnavailable", "message": "busy"}}), True),
    (lambda: requests.ReadTimeout("read timed out"), False),      # the job may exist already
    (lambda: requests.exceptions.ChunkedEncodingError("cut off"), False),
    (lambda: response(504, b"gateway timeout"), False),
])
def test_job_submit_is_sent_again_only_when_the_service_did_not_act_on_it(failure, sent_again, sleeps):
    fake = FakeBES([4])
    submits = []

    def flaky(method, url, body, headers, n):
        if method == "POST" and "/jobs?" in url:
            submits.append(n)
            if len(submits) == 1:
                answer = failure()
                if isinstance(answer, Exception):
                    raise answer
                return answer
        return fake(method, url, body, headers, n)

    svc = WebService("ws", "svc", KEY, base_url="http://fake", session=FakeSession(flaky),
                     retry=RetryPolicy(retries=3, backoff=0.001, backoff_max=0.002))
    if sent_again:
        job = svc.submit_batch(pd.DataFrame({"Col2": ["a"]}), storage=FakeStore())
        assert job.id == "job-1" and len(submits) == 2
    else:
        with pytest.raises(errors.ServiceError):
            svc.submit_batch(pd.DataFrame({"Col2": ["a"]}), storage=FakeStore())
        assert len(submits) == 1
