"""Gateway overhead: RRS calls/s direct to the local host vs through the local APIM gateway.

One run, same host, same bodies, same clients; loopback only and bounded in time. The host
runs in its own process (``azml-nb serve --no-storage``, which also starts the gateway in
that process, as users run it). A second gateway runs in a process of its own, as a real
APIM runs apart from the service. The clients are threads in this process, each with a
pooled ``requests.Session``, calling with the ``unlimited`` subscription (no rate limit).

Anchor: direct calls to the host (the backend key in ``Authorization``). The figure that
matters is ``gateway calls/s / direct calls/s``; the target is >= 0.75 (the gateway costs
at most 25% of direct throughput). Phases alternate (direct, gateway, ...) so that drift in
the machine's load hits both sides alike.

    .venv/bin/python benchmarks/bench_gateway.py [--duration 4] [--clients 8] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _load import hammer, rrs_body  # noqa: E402

CHILD = """
import json, sys
from azml_nb.local.gateway import demo_gateway
gw = demo_gateway(sys.argv[1], sys.argv[2]).start()
print(json.dumps({"gateway_url": gw.api_url(),
                  "subscription_key": gw.subscriptions["demo-unlimited"].primary_key}), flush=True)
sys.stdin.read()          # until the parent closes our stdin
gw.stop()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per phase (default 4)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="direct/gateway alternations per size")
    args = parser.parse_args()

    host = subprocess.Popen([sys.executable, "-m", "azml_nb.cli", "serve", "--no-storage"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    child = None
    try:
        info = json.loads(host.stdout.readline())
        child = subprocess.Popen([sys.executable, "-c", CHILD, info["base_url"], info["api_key"]],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        apart = json.loads(child.stdout.readline())
        tail = f"/workspaces/{info['workspace']}/services/{info['service']}/execute?api-version=2.0&details=true"
        json_ct = {"Content-Type": "application/json"}
        targets = {
            "direct": (info["base_url"] + tail, {**json_ct, "Authorization": "Bearer " + info["api_key"]}),
            "gateway (own process)": (apart["gateway_url"] + tail,
                                      {**json_ct, "Ocp-Apim-Subscription-Key": apart["subscription_key"]}),
            "gateway (in serve)": (info["gateway_url"] + tail,
                                   {**json_ct, "Ocp-Apim-Subscription-Key": info["subscription_key"]}),
        }
        print(f"{args.clients} clients, {args.rounds} x {args.duration:g} s per target and size; host in "
              "its own process; 2 cores shared with other work on the machine")
        bad = 0
        for rows in (1, 100):
            body = rrs_body(rows)
            totals = {name: [0, 0.0, []] for name in targets}
            for _ in range(args.rounds):
                for name, (url, headers) in targets.items():
                    res = hammer(url, headers, body, clients=args.clients, seconds=args.duration)
                    totals[name][0] += res["ok"]
                    totals[name][1] += res["elapsed"]
                    totals[name][2].append(res["lat"])
                    unexpected = {k: v for k, v in res["outcomes"].items() if k != 200}
                    if unexpected:
                        bad += sum(unexpected.values())
                        print(f"  UNEXPECTED {name}: {unexpected}")
            print(f"\n{rows:>4} row(s)/call, body {len(body):,} B")
            direct = totals["direct"][0] / totals["direct"][1]
            for name, (ok, elapsed, lats) in totals.items():
                rate, lat = ok / elapsed, np.concatenate(lats) * 1000
                print(f"  {name:<22} {rate:8.1f} calls/s  p50 {np.percentile(lat, 50):6.1f} ms  "
                      f"p95 {np.percentile(lat, 95):6.1f} ms  ratio to direct {rate / direct:.2f}")
    finally:
        if child is not None:
            child.stdin.close()
            child.wait(30)
        host.terminate()
        host.wait(30)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
