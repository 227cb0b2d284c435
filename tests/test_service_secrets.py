"""Keys never show: repr, str of errors, log records and progress output are scanned for them."""
from __future__ import annotations

import logging
from urllib.parse import parse_qs

import pandas as pd
import pytest

from azml_nb import errors
from azml_nb.datasets import synthetic_reviews
from azml_nb.local.experiments import Experiment, FeatureHashing, PythonScript
from azml_nb.service import WebService
from azml_nb.storage import BlobStorage, parse_connection_string

pytestmark = pytest.mark.integration


def test_no_key_in_repr_errors_logs_or_progress(local_stack, caplog, capsys):
    leak = {}

    def echo_key(df: pd.DataFrame) -> pd.DataFrame:   # a service whose error text holds its own key
        if "key" not in leak:                          # publishing runs the example first
            return df
        raise ValueError(f"refusing; my key is {leak['key']}")

    published = local_stack.publish(Experiment(
        name="Leaky", modules=[PythonScript(echo_key), FeatureHashing(["Col2"], bitsize=2)],
        input_schema={"Col2": "String"}, example=None))
    leak["key"] = published.api_key
    try:
        _scan(local_stack, published, caplog, capsys)
    finally:
        local_stack.host.unpublish(published)


def _scan(local_stack, published, caplog, capsys) -> None:
    seen: list[str] = []
    info = local_stack.info()
    account_key = parse_connection_string(info["storage_connection_string"])["AccountKey"]
    secrets = {"api key": info["api_key"], "leaky api key": published.api_key,
               "storage connection string": info["storage_connection_string"], "account key": account_key}
    if info.get("subscription_key"):
        secrets["subscription key"] = info["subscription_key"]

    df = synthetic_reviews(300, seed=3)[["Col2"]]
    with caplog.at_level(logging.DEBUG):
        direct = local_stack.web_service(gateway=False)
        seen += [repr(direct), repr(direct.storage), str(direct.schema())]
        direct.score(df, progress=True, batch_size=100)
        job = direct.submit_batch(df, cleanup=True)
        job.result(timeout=60, progress=True)
        seen.append(repr(job))
        for loc in job._last["Results"].values():
            secrets["SAS signature"] = parse_qs(loc["SasBlobToken"].lstrip("?"))["sig"][0]
        if info.get("gateway_url"):
            via = local_stack.web_service()
            seen.append(repr(via))
            via.score(df.head(10), progress=True)
        leaky = WebService(published.workspace, published.service, published.api_key,
                           base_url=info["base_url"])
        seen.append(repr(leaky))
        with pytest.raises(errors.ServiceError) as caught:
            leaky.score(df.head(3), progress=True)
        assert caught.value.status_code == 400 and "***" in str(caught.value)
        seen += [str(caught.value), repr(caught.value), caught.value.body or "", str(caught.value.details)]
        wrong = WebService.from_info({**info, "api_key": info["api_key"][::-1]}, gateway=False)
        with pytest.raises(errors.AuthenticationError) as caught:
            wrong.score(df.head(3), progress=False)
        seen += [str(caught.value), repr(wrong)]
        bad_cs = info["storage_connection_string"].replace(account_key, account_key[::-1])
        with pytest.raises(errors.StorageError) as caught:
            BlobStorage(bad_cs, "azureml").upload_bytes("x.csv", b"a\n1\n")
        seen += [str(caught.value), repr(caught.value)]
        secrets["reversed account key"] = account_key[::-1]
        failing = direct.submit_batch(df.head(3), start=False, cleanup=True)
        direct.storage.delete(failing.blobs[0])
        failing.start()
        with pytest.raises(errors.BatchJobError) as caught:
            failing.wait(timeout=60, progress=True)
        seen += [str(caught.value), repr(failing)]
        failing.delete()
    captured = capsys.readouterr()
    assert "scoring" in captured.err and "batch job" in captured.err   # progress was shown
    seen += [captured.out, captured.err, caplog.text]
    seen += [str(r.args) for r in caplog.records]
    text = "\n".join(seen)
    assert len(caplog.records) > 5
    for what, secret in secrets.items():
        assert secret not in text, f"the {what} leaked"
