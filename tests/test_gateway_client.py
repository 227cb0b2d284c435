"""The client (azml_nb.WebService) through the local gateway, on the session's offline stack."""
from __future__ import annotations

import pandas as pd
import pytest
import requests

from azml_nb import WebService, feature_hashing
from azml_nb.datasets import synthetic_reviews
from azml_nb.local.gateway import demo_gateway
from azml_nb.service import RetryPolicy

pytestmark = pytest.mark.integration


def _expected(df: pd.DataFrame) -> pd.DataFrame:
    return feature_hashing(df, ["Col2"], bitsize=3, ngrams=2)


def test_stack_runs_the_gateway_and_info_names_it(local_stack):
    info = local_stack.info()
    assert info["gateway_url"] == local_stack.gateway.url + "/azureml-demo"
    key = info["subscription_key"]
    assert key == local_stack.gateway.subscriptions["demo-unlimited"].primary_key
    url = f"{info['gateway_url']}/workspaces/{info['workspace']}/services/{info['service']}/swagger.json"
    assert requests.get(url, headers={"Ocp-Apim-Subscription-Key": key}, timeout=30).status_code == 200


def test_score_and_batch_through_the_stack_gateway(local_stack):
    df = synthetic_reviews(300, seed=5)[["Col2"]]
    via = local_stack.web_service()                        # from_info: the gateway when named
    assert via.gateway_url == local_stack.info()["gateway_url"]
    direct = local_stack.web_service(gateway=False)
    before = len(local_stack.gateway.usage)
    scored = via.score(df, progress=False)
    pd.testing.assert_frame_equal(scored, direct.score(df, progress=False))
    pd.testing.assert_frame_equal(scored, _expected(df), check_dtype=False)
    job = via.submit_batch(df.head(50))
    result = job.result(timeout=60, progress=False)
    pd.testing.assert_frame_equal(result.reset_index(drop=True),
                                  _expected(df.head(50)).reset_index(drop=True), check_dtype=False)
    calls = local_stack.gateway.usage.frame().iloc[before:]
    assert {"rrs-execute", "bes-submit", "bes-start", "bes-status"} <= set(calls["operation"])
    assert (calls["subscription"] == "demo-unlimited").all() and (calls["outcome"] == "success").all()


def test_score_20000_rows_through_a_rate_limited_product_honours_retry_after(local_stack):
    info = local_stack.info()
    gw = demo_gateway(info["base_url"], info["api_key"], starter_policy=(
        '<policies><inbound><base /><rate-limit calls="5" renewal-period="2" /></inbound></policies>'))
    df = synthetic_reviews(20_000, seed=11)[["Col2"]].sample(frac=1.0, random_state=2)
    df.index = pd.Index(df.index * 7 + 1, name="review")
    with gw.start():
        svc = WebService(info["workspace"], info["service"], gateway_url=gw.api_url(),
                         subscription_key=gw.subscriptions["demo-starter"].primary_key,
                         batch_size=1000, max_workers=4,
                         retry=RetryPolicy(retries=40, backoff=0.1, deadline=120))
        scored = svc.score(df, progress=False)                       # 20 batches + swagger.json
    assert scored.index.equals(df.index)
    pd.testing.assert_frame_equal(scored, _expected(df), check_dtype=False)
    usage = gw.usage.frame()
    refused = usage[usage["status_code"] == 429]
    assert len(refused) > 0                                           # the limit did bite
    assert usage["outcome"].value_counts()["success"] == 21           # every batch once, + swagger
