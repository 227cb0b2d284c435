"""The client through the local APIM-style gateway: subscription keys, 429 + Retry-After, BES."""
from __future__ import annotations

import logging
import uuid

import pandas as pd
import pytest

from azml_nb import errors
from azml_nb.datasets import synthetic_reviews
from azml_nb.hashing import feature_hashing
from azml_nb.service import RetryPolicy, WebService

pytestmark = pytest.mark.integration

BURST_POLICY = """<policies>
  <inbound><base /><rate-limit calls="3" renewal-period="1" /></inbound>
  <backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error>
</policies>"""


@pytest.fixture
def gateway(local_stack):
    if local_stack.gateway is None:
        pytest.skip("this stack runs no gateway")
    return local_stack.gateway


def test_score_through_the_gateway_sends_only_the_subscription_key(local_stack, gateway):
    svc = local_stack.web_service()               # info has gateway_url + subscription_key
    assert svc.url == local_stack.info()["gateway_url"] and "Authorization" not in svc._headers(json_body=True)
    df = synthetic_reviews(300, seed=4)[["Col2"]]
    pd.testing.assert_frame_equal(svc.score(df, progress=False, batch_size=100),
                                  feature_hashing(df, ["Col2"], bitsize=3, ngrams=2), check_dtype=False)
    bad = WebService.from_info({**local_stack.info(), "subscription_key": "not-a-key-42"})
    with pytest.raises(errors.AuthenticationError) as caught:
        bad.score(df, progress=False, check_schema=False)
    assert caught.value.status_code == 401 and "not-a-key-42" not in str(caught.value)


@pytest.mark.parametrize("options", [{"details": False}, {"format": "swagger", "details": False}])
def test_score_without_details_through_the_gateway(local_stack, gateway, options):
    # the seed's RRS Execute template names details in its query, so APIM requires it: the
    # client must say details=false rather than leave it out (else APIM answers 404)
    svc = local_stack.web_service()
    assert "details=false" in svc.execute_url(**options)
    df = pd.DataFrame({"Col2": ["This is a good day", "hello world"]}, index=[10, 10])
    out = svc.score(df, progress=False, **options)
    expected = feature_hashing(df, ["Col2"], bitsize=3, ngrams=2)
    pd.testing.assert_frame_equal(out, expected, check_dtype=False)


def test_429_with_retry_after_is_honoured(local_stack, gateway, caplog):
    product = f"burst-{uuid.uuid4().hex[:6]}"
    gateway.add_product(product, "Burst", policy=BURST_POLICY, apis=[gateway.api("azureml-demo")])
    sub = gateway.subscribe(product)
    info = {**local_stack.info(), "subscription_key": sub.primary_key}
    svc = WebService.from_info(info, retry=RetryPolicy(retries=10, backoff=0.05, deadline=30))
    df = synthetic_reviews(400, seed=8)[["Col2"]]
    with caplog.at_level(logging.INFO, logger="azml_nb.service"):
        out = svc.score(df, progress=False, batch_size=50, max_workers=2, check_schema=False)
    pd.testing.assert_frame_equal(out, feature_hashing(df, ["Col2"], bitsize=3, ngrams=2), check_dtype=False)
    assert "got 429" in caplog.text
    waits = [r for r in caplog.records if "got 429" in r.getMessage()]
    for record in waits:   # "... got 429 (Retry-After 1 s); retry 1/10 in 1.03 s"
        text = record.getMessage()
        asked = float(text.split("Retry-After ", 1)[1].split()[0])
        assert float(text.rsplit(" in ", 1)[1].split()[0]) >= asked > 0


def test_batch_job_through_the_gateway(local_stack, gateway):
    svc = local_stack.web_service()
    df = synthetic_reviews(60, seed=9)[["Col2"]]
    job = svc.submit_batch(df, cleanup=True)
    out = job.result(timeout=60, progress=False)
    pd.testing.assert_frame_equal(out, feature_hashing(df, ["Col2"], bitsize=3, ngrams=2))
