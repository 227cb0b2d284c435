"""Load on the local web-service host: 50 concurrent clients for 20 s, 1-row and 1,000-row RRS calls.

Loopback only and bounded in time. The host runs in its own process (``azml-nb serve
--no-storage``); the clients are threads in this process, each with its own pooled
``requests.Session``. Every answer is counted: 200, the documented 503
TooManyConcurrentRequests (MaxConcurrentCalls = 20 < 50 clients), anything else is an error.

Anchor, in the same run: the host's own request handler (JSON parse, schema check, Feature
Hashing, response encoding) called in-process on one thread, with no HTTP. The ratio
``host rows/s / anchor rows/s`` says how much of the handler's single-thread speed the
HTTP server keeps under load.

    .venv/bin/python benchmarks/bench_host.py [--duration 20] [--clients 50]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azml_nb.local.experiments import simple_feature_hashing_experiment  # noqa: E402
from azml_nb.local.host import WebServiceHost  # noqa: E402
from _load import hammer, rrs_body  # noqa: E402


def anchor(body: bytes, seconds: float = 3.0) -> float:
    """Calls/s of the host's handler in-process, one thread, no HTTP."""
    host = WebServiceHost()
    svc = host.publish(simple_feature_hashing_experiment())
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        host._score(svc, body, "classic", True)
        n += 1
    host.stop()
    return n / (time.perf_counter() - t0)


def load(info: dict, body: bytes, *, clients: int, seconds: float) -> dict:
    url = (f"{info['base_url']}/workspaces/{info['workspace']}/services/{info['service']}"
           "/execute?api-version=2.0&details=true")
    headers = {"Authorization": "Bearer " + info["api_key"], "Content-Type": "application/json"}
    res = hammer(url, headers, body, clients=clients, seconds=seconds)
    lat, elapsed, outcomes = res["lat"], res["elapsed"], res["outcomes"]
    return {"outcomes": dict(outcomes), "ok_per_s": outcomes[200] / elapsed,
            "all_per_s": sum(outcomes.values()) / elapsed,
            "p50_ms": float(np.percentile(lat, 50) * 1000), "p95_ms": float(np.percentile(lat, 95) * 1000)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per payload size (default 20)")
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()

    proc = subprocess.Popen([sys.executable, "-m", "azml_nb.cli", "serve", "--no-storage"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        bad = 0
        print(f"{args.clients} clients x {args.duration:g} s per size, host in its own process, "
              f"MaxConcurrentCalls 20 (2 shared cores, other work on the machine)")
        for rows in (1, 1000):
            body = rrs_body(rows)
            base = anchor(body)
            res = load(info, body, clients=args.clients, seconds=args.duration)
            unexpected = {k: v for k, v in res["outcomes"].items()
                          if k not in (200, "503 TooManyConcurrentRequests")}
            bad += sum(unexpected.values())
            print(f"\n{rows:>5} row(s)/call  body {len(body):,} B")
            print(f"  host: {res['ok_per_s']:8.1f} ok calls/s ({res['ok_per_s'] * rows:10.0f} rows/s), "
                  f"{res['all_per_s']:8.1f} answers/s, p50 {res['p50_ms']:.1f} ms, p95 {res['p95_ms']:.1f} ms")
            print(f"  outcomes: {res['outcomes']}")
            print(f"  anchor (handler in-process, 1 thread, no HTTP): {base:8.1f} calls/s "
                  f"({base * rows:10.0f} rows/s)")
            print(f"  ratio host/anchor: {res['ok_per_s'] / base:.2f}")
            if unexpected:
                print(f"  UNEXPECTED: {unexpected}")
    finally:
        proc.terminate()
        proc.wait(30)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
