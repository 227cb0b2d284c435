"""BES on the local host with a real Azurite: submit, start, status, results via SAS, cancel, errors."""
from __future__ import annotations

import io
import json
import threading
import time
import uuid
from urllib.parse import parse_qs

import pandas as pd
import pytest
import requests
from azure.storage.blob import BlobServiceClient

from azml_nb.datasets import synthetic_reviews
from azml_nb.hashing import feature_hashing
from azml_nb.local.experiments import Experiment, PythonScript

pytestmark = pytest.mark.integration


def _auth(svc):
    return {"Authorization": "Bearer " + svc.api_key, "Content-Type": "application/json"}


def _jobs(stack, svc=None):
    svc = svc or stack.service
    return f"{stack.base_url}{svc.path}/jobs"


def _upload(stack, data: bytes, suffix=".csv") -> str:
    """Put *data* in the stack's container; return its RelativeLocation."""
    name = f"in-{uuid.uuid4().hex}{suffix}"
    client = BlobServiceClient.from_connection_string(stack.storage_connection_string)
    client.get_blob_client(stack.storage_container, name).upload_blob(data)
    return f"/{stack.storage_container}/{name}"


def _loc(stack, relative):
    return {"ConnectionString": stack.storage_connection_string, "RelativeLocation": relative}


def _submit(stack, body, svc=None):
    svc = svc or stack.service
    return requests.post(_jobs(stack, svc) + "?api-version=2.0", data=json.dumps(body), headers=_auth(svc), timeout=30)


def _status(stack, job_id, svc=None):
    svc = svc or stack.service
    resp = requests.get(f"{_jobs(stack, svc)}/{job_id}?api-version=2.0", headers=_auth(svc), timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _start(stack, job_id, svc=None):
    svc = svc or stack.service
    resp = requests.post(f"{_jobs(stack, svc)}/{job_id}/start?api-version=2.0", headers=_auth(svc), timeout=30)
    assert resp.status_code == 200, resp.text


def _wait(stack, job_id, svc=None, *, until=("Finished", "Failed", "Cancelled"), timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        status = _status(stack, job_id, svc)
        if status["StatusCode"] in until:
            return status
        assert time.monotonic() < deadline, f"job {job_id} still {status['StatusCode']}"
        time.sleep(0.05)


def _run_job(stack, body, svc=None):
    resp = _submit(stack, body, svc)
    assert resp.status_code == 200, resp.text
    job_id = resp.json()
    assert isinstance(job_id, str) and resp.text == f'"{job_id}"'
    _start(stack, job_id, svc)
    return job_id, _wait(stack, job_id, svc)


def test_job_over_synthetic_reviews_matches_feature_hashing(local_stack):
    rows = synthetic_reviews(3000, seed=4)[["Col2"]]
    source = _upload(local_stack, rows.to_csv(index=False).encode())
    out = f"/{local_stack.storage_container}/out-{uuid.uuid4().hex}.csv"
    body = {"Inputs": {"input1": _loc(local_stack, source)}, "Outputs": {"output1": _loc(local_stack, out)},
            "GlobalParameters": {}}
    resp = _submit(local_stack, body)
    assert resp.status_code == 200, resp.text
    job_id = resp.json()
    assert _status(local_stack, job_id)["StatusCode"] == "NotStarted"
    _start(local_stack, job_id)
    status = _wait(local_stack, job_id)
    assert status["StatusCode"] == "Finished", status
    result = status["Results"]["output1"]
    assert set(result) >= {"ConnectionString", "RelativeLocation", "BaseLocation", "SasBlobToken"}
    assert result["RelativeLocation"] == out
    # read back through the SAS URL with plain requests (no storage SDK, no key)
    blob = requests.get(result["BaseLocation"] + result["RelativeLocation"] + result["SasBlobToken"], timeout=30)
    assert blob.status_code == 200
    got = pd.read_csv(io.BytesIO(blob.content), dtype={"Col2": str}, keep_default_na=False)
    want = feature_hashing(rows, ["Col2"], bitsize=3, ngrams=2)
    assert got.columns.tolist() == want.columns.tolist()
    assert len(got) == 3000
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True), check_dtype=False)
    # the job is listed for its service
    listed = requests.get(_jobs(local_stack) + "?api-version=2.0", headers=_auth(local_stack.service), timeout=30)
    assert job_id in [j["Id"] for j in listed.json()]


def test_sas_token_is_read_only_and_expires(local_stack):
    source = _upload(local_stack, b"Col2\nThis is a good day\n")
    out = f"/{local_stack.storage_container}/sas-{uuid.uuid4().hex}.tsv"
    _, status = _run_job(local_stack, {"Inputs": {"input1": _loc(local_stack, source)},
                                       "Outputs": {"output1": _loc(local_stack, out)}})
    result = status["Results"]["output1"]
    token = parse_qs(result["SasBlobToken"].lstrip("?"))
    assert token["sp"] == ["r"] and "se" in token
    expiry = pd.Timestamp(token["se"][0])
    assert pd.Timestamp.now(tz="UTC") < expiry < pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
    url = result["BaseLocation"] + result["RelativeLocation"] + result["SasBlobToken"]
    text = requests.get(url, timeout=30).text
    assert text.splitlines()[1].split("\t")[1:] == ["1", "1", "2", "2", "0", "2", "0", "1"]  # .tsv: tab-separated
    overwrite = requests.put(url, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}, timeout=30)
    assert overwrite.status_code == 403


def test_singular_input_and_default_output_location(local_stack):
    source = _upload(local_stack, b"Col2\nThis is a good day\n")
    job_id, status = _run_job(local_stack, {"Input": _loc(local_stack, source), "GlobalParameters": {}})
    assert status["StatusCode"] == "Finished", status
    result = status["Results"]["output1"]
    assert result["RelativeLocation"].startswith(f"/{local_stack.storage_container}/{job_id}")
    assert requests.get(result["BaseLocation"] + result["RelativeLocation"] + result["SasBlobToken"],
                        timeout=30).status_code == 200


def test_global_parameters_apply_to_batch_jobs(local_stack):
    source = _upload(local_stack, b"Col2\nThis is a good day\n")
    out = f"/{local_stack.storage_container}/gp-{uuid.uuid4().hex}.arff"
    _, status = _run_job(local_stack, {"Inputs": {"input1": _loc(local_stack, source)},
                                       "Outputs": {"output1": _loc(local_stack, out)},
                                       "GlobalParameters": {"Hashing bitsize": 4}})
    result = status["Results"]["output1"]
    text = requests.get(result["BaseLocation"] + result["RelativeLocation"] + result["SasBlobToken"], timeout=30).text
    assert text.count("@attribute") == 17 and "@data" in text


@pytest.mark.parametrize("make_body, detail, words", [
    (lambda s, src: {"Input": _loc(s, src), "Inputs": {"input1": _loc(s, src)}}, "DuplicateInputInBatchCall",
     ["Input", "Inputs"]),
    (lambda s, src: {"Inputs": {"input1": _loc(s, src)},
                     "Outputs": {"output1": _loc(s, f"/{s.storage_container}/out.json")}}, "InvalidBlobExtension",
     [".json", ".csv"]),
    (lambda s, src: {"Outputs": {}}, "MissingInputBlobInformation", ["input1"]),
    (lambda s, src: {"Inputs": {"input9": _loc(s, src)}, }, "MissingInputBlobInformation", ["input1"]),
    (lambda s, src: {"Inputs": {"input1": _loc(s, src), "input9": _loc(s, src)}}, "InputNameNotFound", ["input9"]),
    (lambda s, src: {"Inputs": {"input1": {"ConnectionString": "not a connection string",
                                           "RelativeLocation": src}}}, "InvalidConnectionString", ["input1"]),
    (lambda s, src: {"Inputs": {"input1": _loc(s, "/only-a-container")}}, "InvalidRelativeLocation",
     ["/only-a-container"]),
])
def test_bad_submissions_are_400(local_stack, make_body, detail, words):
    resp = _submit(local_stack, make_body(local_stack, f"/{local_stack.storage_container}/x.csv"))
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["code"] == "BadArgument" and [d["code"] for d in err["details"]] == [detail]
    for word in words:
        assert word in err["message"]
    assert local_stack.storage_connection_string not in resp.text


@pytest.mark.parametrize("data, words", [
    (None, ["was not found"]),
    (b"", ["empty", "header"]),
    (b"This is a good day\nAnother day\n", ["header", "Col2"]),
    (b'Col2\n"unclosed quote\n', ["not a valid CSV"]),
])
def test_failed_jobs_say_what_went_wrong(local_stack, data, words):
    source = (_upload(local_stack, data) if data is not None
              else f"/{local_stack.storage_container}/missing-{uuid.uuid4().hex}.csv")
    _, status = _run_job(local_stack, {"Inputs": {"input1": _loc(local_stack, source)}})
    assert status["StatusCode"] == "Failed"
    assert status["Results"] is None
    for word in words:
        assert word in status["Details"], status["Details"]
    assert source in status["Details"]
    assert local_stack.azurite.account_key not in status["Details"]


def test_value_that_does_not_parse_fails_the_job_naming_row_and_line(local_stack):
    typed = local_stack.publish(Experiment(name="Typed", modules=[PythonScript(lambda df: df)],
                                           input_schema={"n": "Int32"}, example=pd.DataFrame({"n": [1]})))
    source = _upload(local_stack, b"n\n1\n2\nthree\n")
    _, status = _run_job(local_stack, {"Inputs": {"input1": _loc(local_stack, source)}}, typed)
    assert status["StatusCode"] == "Failed"
    assert "'n'" in status["Details"] and "row 2" in status["Details"] and "line 4" in status["Details"]


def _gated_experiment(gate: threading.Event, running: threading.Semaphore):
    def wait(df):
        if len(df):
            running.release()
            gate.wait(30)
        return df
    return Experiment(name="Gated", modules=[PythonScript(wait, name="Wait")], input_schema={"Col2": "String"},
                      example=pd.DataFrame({"Col2": []}, dtype=object))


def test_jobs_queue_on_a_bounded_pool_and_delete_cancels(local_stack):
    gate, running = threading.Event(), threading.Semaphore(0)
    svc = local_stack.publish(_gated_experiment(gate, running))
    try:
        source = _upload(local_stack, b"Col2\nslow day\n")
        outs = [f"/{local_stack.storage_container}/gated-{i}-{uuid.uuid4().hex}.csv" for i in range(3)]
        ids = []
        for out in outs:
            resp = _submit(local_stack, {"Inputs": {"input1": _loc(local_stack, source)},
                                         "Outputs": {"output1": _loc(local_stack, out)}}, svc)
            ids.append(resp.json())
            _start(local_stack, ids[-1], svc)
        assert running.acquire(timeout=20) and running.acquire(timeout=20)  # two workers busy
        states = [_status(local_stack, i, svc)["StatusCode"] for i in ids]
        assert sorted(states) == ["NotStarted", "Running", "Running"]  # the third waits in the queue
        # delete the first running job: it is cancelled and forgotten
        first = ids[states.index("Running")]
        resp = requests.delete(f"{_jobs(local_stack, svc)}/{first}?api-version=2.0", headers=_auth(svc), timeout=30)
        assert resp.status_code == 200
        gone = requests.get(f"{_jobs(local_stack, svc)}/{first}?api-version=2.0", headers=_auth(svc), timeout=30)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "NotFound"
        gate.set()
        rest = [i for i in ids if i != first]
        assert [_wait(local_stack, i, svc)["StatusCode"] for i in rest] == ["Finished", "Finished"]
        # the cancelled job wrote nothing
        time.sleep(0.2)
        client = BlobServiceClient.from_connection_string(local_stack.storage_connection_string)
        cancelled_out = outs[ids.index(first)]
        assert not client.get_blob_client(local_stack.storage_container, cancelled_out.split("/", 2)[2]).exists()
    finally:
        gate.set()
        local_stack.host.unpublish(svc)


def test_jobs_run_after_the_host_is_stopped_and_started_again(azurite):
    from azml_nb.local import start

    stack = start(storage=azurite, gateway=False)
    try:
        stack.host.stop()
        stack.host.start()
        source = _upload(stack, b"Col2\nThis is a good day\n")
        _, status = _run_job(stack, {"Inputs": {"input1": _loc(stack, source)}})
        assert status["StatusCode"] == "Finished", status
    finally:
        stack.stop()
