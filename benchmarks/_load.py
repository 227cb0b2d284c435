"""What the server benchmarks share: an RRS request body and a bounded loopback load.

Only for loopback URLs of servers the benchmark started itself; every loop stops after
*seconds*.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

import numpy as np
import requests

from azml_nb.datasets import synthetic_reviews


def rrs_body(rows: int) -> bytes:
    """A classic-format RRS request of *rows* synthetic reviews in ``Col2``."""
    texts = synthetic_reviews(rows, seed=rows)["Col2"].tolist()
    return json.dumps({"Inputs": {"input1": {"ColumnNames": ["Col2"], "Values": [[t] for t in texts]}},
                      "GlobalParameters": {}}).encode()


def hammer(url: str, headers: dict, body: bytes, *, clients: int, seconds: float) -> dict:
    """POST *body* to *url* from *clients* threads (a session each) for *seconds*.

    Returns ``outcomes`` (a Counter of status codes; a 503 is keyed with its detail code,
    a transport failure by its exception name), ``ok`` (the 200s), ``elapsed`` and ``lat``
    (seconds of every 200).
    """
    outcomes: Counter = Counter()
    latencies: list[float] = []
    lock, stop = threading.Lock(), threading.Event()

    def client() -> None:
        session = requests.Session()
        while not stop.is_set():
            t = time.perf_counter()
            try:
                resp = session.post(url, data=body, headers=headers, timeout=60)
                key = resp.status_code
                if key == 503:
                    try:
                        key = f"503 {resp.json()['error']['details'][0]['code']}"
                    except (ValueError, KeyError, IndexError, TypeError):
                        pass
            except requests.RequestException as err:
                key = type(err).__name__
            dt = time.perf_counter() - t
            with lock:
                outcomes[key] += 1
                if key == 200:
                    latencies.append(dt)
        session.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(120)
    elapsed = time.perf_counter() - t0
    lat = np.array(latencies) if latencies else np.array([float("nan")])
    return {"outcomes": outcomes, "ok": outcomes[200], "elapsed": elapsed, "lat": lat}
