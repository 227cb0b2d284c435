"""A short, bounded load run: 50 concurrent clients on loopback, no 5xx but the documented 503.

The 20-second version with requests/s figures is benchmarks/bench_host.py.
"""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import requests

from azml_nb.local.experiments import simple_feature_hashing_experiment
from azml_nb.local.host import WebServiceHost

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _client(svc, body, stop, outcomes, lock):
    session = requests.Session()
    headers = {"Authorization": "Bearer " + svc.api_key, "Content-Type": "application/json"}
    while not stop.is_set():
        try:
            resp = session.post(svc.execute_url, data=body, headers=headers, timeout=30)
            key = resp.status_code
            if key == 503:
                key = (503, resp.json()["error"]["details"][0]["code"])
            elif key == 200:
                assert len(resp.json()["Results"]["output1"]["value"]["Values"]) == 20
        except Exception as err:  # noqa: BLE001 - every outcome is counted and judged below
            key = type(err).__name__
        with lock:
            outcomes[key] += 1
    session.close()


def test_fifty_clients_get_only_200_or_documented_503():
    import json
    body = json.dumps({"Inputs": {"input1": {"ColumnNames": ["Col2"], "Values": [[f"a fine review {i}"] for i in range(20)]}},
                       "GlobalParameters": {}})
    outcomes, lock, stop = Counter(), threading.Lock(), threading.Event()
    with WebServiceHost().start() as host:
        svc = host.publish(simple_feature_hashing_experiment())
        threads = [threading.Thread(target=_client, args=(svc, body, stop, outcomes, lock)) for _ in range(50)]
        for t in threads:
            t.start()
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
    assert set(outcomes) <= {200, (503, "TooManyConcurrentRequests")}, outcomes
    assert outcomes[200] > 0
