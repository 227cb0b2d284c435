"""Batch (BES) jobs through Azurite and the local host: round trip, cancel, re-attach, failure."""
from __future__ import annotations

import _thread
import logging
import threading

import pandas as pd
import pytest

from azml_nb import errors
from azml_nb.bes import BatchJob, JobStatus
from azml_nb.datasets import synthetic_reviews
from azml_nb.hashing import feature_hashing
from azml_nb.storage import BlobStorage

pytestmark = pytest.mark.integration


@pytest.fixture
def svc(local_stack):
    return local_stack.web_service(gateway=False)


def test_round_trip_equals_feature_hashing(svc, capsys):
    df = synthetic_reviews(800, seed=5)[["Col2"]]
    job = svc.submit_batch(df, cleanup=True)
    assert isinstance(job, BatchJob) and job.id in repr(job)
    assert svc.storage.exists(job.blobs[0])
    assert job.wait(timeout=60, progress=True) is JobStatus.Finished
    assert f"batch job {job.id}: Finished" in capsys.readouterr().err
    out = job.result(progress=False)
    expected = feature_hashing(df, ["Col2"], bitsize=3, ngrams=2)
    pd.testing.assert_frame_equal(out, expected)           # typed from swagger.json: same dtypes
    assert svc.score(df, progress=False).equals(out)        # BES and RRS agree
    assert not any(svc.storage.exists(b) for b in job.blobs)  # cleanup=True removed them


def test_csv_file_input_and_reattach_by_id(svc, tmp_path):
    df = synthetic_reviews(50, seed=6)[["Col2"]]
    path = tmp_path / "reviews.csv"
    df.to_csv(path, index=False)
    job = svc.submit_batch(path)
    again = svc.job(job.continuation_token())
    out = again.result(timeout=60, progress=False)
    pd.testing.assert_frame_equal(out, feature_hashing(df, ["Col2"], bitsize=3, ngrams=2))
    assert again.status is JobStatus.Finished
    job.delete()


def test_cancel_from_a_reattached_handle(svc):
    job = svc.submit_batch(synthetic_reviews(20)[["Col2"]], start=False, cleanup=True)
    again = svc.job(job.id)
    assert again.status is JobStatus.NotStarted
    again.cancel()
    with pytest.raises(errors.BatchJobError) as caught:
        again.wait(timeout=30, progress=False)
    assert caught.value.status is JobStatus.Cancelled and caught.value.job_id == job.id
    job.delete()       # the submitting handle still cleans its blobs up
    assert not any(svc.storage.exists(b) for b in job.blobs)


def test_ctrl_c_while_waiting_says_how_to_reattach(svc, caplog):
    job = svc.submit_batch(synthetic_reviews(5)[["Col2"]], start=False, cleanup=True)
    timer = threading.Timer(0.4, _thread.interrupt_main)
    timer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="azml_nb.bes"), pytest.raises(KeyboardInterrupt):
            job.wait(timeout=30, progress=False, poll_interval=0.05, max_poll_interval=0.1)
    finally:
        timer.cancel()
    text = caplog.text
    assert f"svc.job({job.id!r})" in text and ".cancel()" in text
    assert svc.job(job.id).status is JobStatus.NotStarted   # still there to find
    job.delete()


def test_missing_input_blob_fails_with_the_hosts_details(svc):
    job = svc.submit_batch(synthetic_reviews(5)[["Col2"]], start=False, cleanup=True)
    svc.storage.delete(job.blobs[0])
    job.start()
    with pytest.raises(errors.BatchJobError) as caught:
        job.result(timeout=60, progress=False)
    err = caught.value
    assert err.status is JobStatus.Failed and err.job_id == job.id
    assert "was not found" in str(err) and job.blobs[0] in str(err)
    assert "was not found" in err.details[0]["message"]
    job.delete()


def test_storage_helpers_round_trip_and_sas(local_stack):
    store = BlobStorage(local_stack.storage_connection_string, "azml-nb-tests")
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y,z"]})
    assert store.upload_frame("t/frame.csv", df) == "/azml-nb-tests/t/frame.csv"
    pd.testing.assert_frame_equal(store.download_frame("t/frame.csv"), df)
    import requests

    url = store.sas_url("t/frame.csv")
    assert requests.get(url, timeout=10).content.startswith(b"a,b\n")
    assert store.list_names("t/") == ["t/frame.csv"]
    assert store.delete("t/frame.csv") and not store.delete("t/frame.csv")
    assert store.account_name in repr(store) and store.connection_string not in repr(store)
    with pytest.raises(errors.StorageError) as caught:
        store.download_bytes("t/nothing.csv")
    assert "nothing.csv" in str(caught.value)
    assert local_stack.azurite.connection_string not in str(caught.value)


def _connections_to(port: int) -> int:
    """Established TCP connections of this process to 127.0.0.1:*port*."""
    import gc
    import os

    gc.collect()                                  # sockets of dropped clients close now
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    with open("/proc/net/tcp") as fh:
        rows = [line.split() for line in fh.readlines()[1:]]
    return sum(1 for r in rows if r[3] == "01" and int(r[2].split(":")[1], 16) == port and r[9] in inodes)


@pytest.mark.skipif(not __import__("os").path.exists("/proc/net/tcp"), reason="needs Linux /proc")
def test_close_releases_the_storage_connections_the_client_made(local_stack):
    port = int(local_stack.azurite.blob_endpoint.rsplit(":", 1)[1].split("/")[0])
    before = _connections_to(port)
    with local_stack.web_service(gateway=False) as svc:      # from_info builds its BlobStorage
        svc.submit_batch(synthetic_reviews(5)[["Col2"]], cleanup=True).result(timeout=60, progress=False)
        assert _connections_to(port) > before               # kept alive for the next call
    assert _connections_to(port) == before

