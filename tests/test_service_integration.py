"""RRS scoring against the real local host over loopback HTTP, with its fault injection on.

The host here is started by this module without Azurite (RRS needs no storage), so
switching its faults on cannot disturb other test files.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from azml_nb import errors
from azml_nb.datasets import synthetic_reviews
from azml_nb.hashing import feature_hashing
from azml_nb.local.experiments import Experiment, FeatureHashing, PythonScript, SelectColumns
from azml_nb.local.host import FaultInjection
from azml_nb.service import RetryPolicy, ScoreResult, WebService

pytestmark = pytest.mark.integration

POISON = "POISON-ROW"
# quick backoff: many retries, tiny waits, so 10% faults cost little wall time
RETRY = RetryPolicy(retries=12, backoff=0.02, backoff_max=0.5, deadline=60)


def _refuse_poison(df: pd.DataFrame) -> pd.DataFrame:
    if (df["Col2"] == POISON).any():
        raise ValueError(f"cannot hash {POISON}")
    return df


@pytest.fixture(scope="module")
def stack():
    from azml_nb.local import start

    with start(storage=False, gateway=False) as running:
        poisoned = running.publish(Experiment(
            name="Refuses poison",
            modules=[SelectColumns(["Col2"]), PythonScript(_refuse_poison, name="Refuse poison"),
                     FeatureHashing(["Col2"], bitsize=3, ngrams=2)],
            input_schema={"Col2": "String"},
            example=pd.DataFrame({"Col2": ["This is a good day"]})))
        running.poisoned = poisoned
        yield running
        running.host.faults = None


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    """100,000 reviews in a shuffled order with a non-default index (order and index must survive)."""
    df = synthetic_reviews(100_000, seed=7)[["Col2"]]
    df = df.sample(frac=1.0, random_state=3)
    df.index = pd.Index(df.index * 10 + 3, name="review")
    return df


def test_faulty_run_equals_clean_run(stack, reviews, caplog):
    svc = stack.web_service(gateway=False, retry=RETRY, batch_size=1000, max_workers=4)   # 100 requests
    stack.host.faults = None
    clean = svc.score(reviews, progress=False)
    assert clean.index.equals(reviews.index)
    head = reviews.iloc[:3000]   # the exact hashing of every row is other tests' job; keep this one quick
    pd.testing.assert_frame_equal(clean.iloc[:3000], feature_hashing(head, ["Col2"], bitsize=3, ngrams=2),
                                  check_dtype=False)
    stack.host.faults = FaultInjection(rate=0.10, kinds=("throttle", "timeout", "drop"), seed=11)
    try:
        with caplog.at_level(logging.INFO, logger="azml_nb.service"):
            faulty = svc.score(reviews, progress=False)
    finally:
        stack.host.faults = None
    pd.testing.assert_frame_equal(faulty, clean, check_exact=True)   # rows, order, index, dtypes
    assert list(faulty.dtypes) == list(clean.dtypes)
    retried = " ".join(r.getMessage() for r in caplog.records if "retry" in r.getMessage())
    assert "503" in retried and "504" in retried and "ConnectionError" in retried


def poisoned_frame(n: int, at: int) -> pd.DataFrame:
    df = synthetic_reviews(n, seed=1)[["Col2"]]
    df.index = pd.Index([f"id{i}" for i in range(n)])
    df.iloc[at, 0] = POISON
    return df


def test_a_400_in_one_batch_names_its_rows(stack):
    info = {**stack.info(stack.poisoned)}
    svc = WebService.from_info(info, retry=RETRY, batch_size=1000, max_workers=3)
    df = poisoned_frame(10_000, 4321)
    with pytest.raises(errors.ServiceError) as caught:
        svc.score(df, progress=False)
    err = caught.value
    assert err.status_code == 400 and err.code == "ModuleExecutionError"
    assert err.rows == range(4000, 5000)
    assert "rows 4000..4999" in str(err) and POISON in str(err)
    assert err.request_id


def test_collect_returns_every_other_row(stack):
    svc = WebService.from_info(stack.info(stack.poisoned), retry=RETRY, batch_size=1000, max_workers=3)
    df = poisoned_frame(10_000, 4321)
    res = svc.score(df, progress=False, errors="collect")
    assert isinstance(res, ScoreResult) and not res.ok and len(res.failures) == 1
    assert res.failed_rows == list(range(4000, 5000))
    keep = np.r_[0:4000, 5000:10_000]
    assert res.output.index.equals(df.index[keep])
    expected = feature_hashing(df.iloc[keep], ["Col2"], bitsize=3, ngrams=2)
    pd.testing.assert_frame_equal(res.output, expected, check_dtype=False)
    assert res.failed_input.index.equals(df.index[4000:5000])


def test_requests_stay_under_the_size_limit_and_formats_agree(stack):
    df = synthetic_reviews(3000, seed=2)[["Col2"]]
    svc = stack.web_service(retry=RETRY)
    small = svc.score(df, progress=False, max_request_bytes=64_000)
    swagger = svc.score(df, progress=False, format="swagger")
    strings = svc.score(df, progress=False, details=True, numbers_as_strings=True)
    pd.testing.assert_frame_equal(small, swagger)
    pd.testing.assert_frame_equal(small, strings)
    # GlobalParameters reach the module: bitsize 4 gives 16 columns
    wide = svc.score(df.head(5), progress=False, global_parameters={"Hashing bitsize": 4})
    assert wide.shape == (5, 17)


def test_schema_refusal_and_wrong_key(stack):
    svc = stack.web_service()
    with pytest.raises(errors.SchemaError) as caught:
        svc.score(synthetic_reviews(5), progress=False)
    assert "expected: Col2 (string)" in str(caught.value) and "unexpected: Col1" in str(caught.value)
    info = {**stack.info(), "api_key": "wrong-key-123"}
    with pytest.raises(errors.AuthenticationError) as caught:
        WebService.from_info(info).score(synthetic_reviews(5)[["Col2"]], progress=False)
    assert caught.value.status_code == 401 and "wrong-key-123" not in str(caught.value)
