"""``make demo``: the walkthrough in the terminal, on the offline stack.

Run as ``python -m azml_nb.demo [--out DIR]``. Each step prints what it did; pictures and
executed notebooks land in ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

import azml_nb as az


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def payload_demo() -> None:
    step("A DataFrame becomes a request body (classic format)")
    df = pd.DataFrame({"Col2": ["This is a good day"]})
    print(json.dumps(az.to_payload(df), indent=2))
    print("the same as swagger records:", az.payload.dumps(az.to_payload(df, format="swagger")).decode())

    step("A response body (every value a string, typed by ColumnTypes) becomes a typed DataFrame")
    columns = [f"Col2_HashingFeature.{i}" for i in range(8)]
    body = {"Results": {"output1": {"type": "table", "value": {
        "ColumnNames": columns, "ColumnTypes": ["Int32"] * 8,
        "Values": [["1", "1", "2", "2", "0", "2", "0", "1"]]}}}}
    frame = az.from_response(body)
    print(frame.to_string())
    print("  column types:", ", ".join(f"{n} x {t}" for t, n in frame.dtypes.astype(str).value_counts().items()))


def stack_demo(stack=None) -> None:
    """Score the docs example through RRS and run one BES job on the offline stack.

    Uses the running *stack* when given, else starts one (Azurite + host) for the time it takes.
    """
    import io
    import uuid

    import requests
    from azure.storage.blob import BlobServiceClient

    own = stack is None
    if own:
        from .local import start

        step("Offline stack: Azurite + the local web-service host")
        stack = start()
    try:
        info, svc = stack.info(), stack.service
        print(f"  host {info['base_url']}, workspace {info['workspace']}, service {info['service']}")
        print(f"  help page {svc.help_url}")
        headers = {"Authorization": "Bearer " + info["api_key"], "Content-Type": "application/json"}

        step("RRS: the docs example, POST .../execute?api-version=2.0&details=true")
        body = {"Inputs": {"input1": {"ColumnNames": ["Col2"], "Values": [["This is a good day"]]}},
                "GlobalParameters": {}}
        resp = requests.post(svc.execute_url, json=body, headers=headers, timeout=30)
        print(f"  HTTP {resp.status_code}: {resp.text[:160]}...")
        scored = az.from_response(resp.content)
        print(scored.to_string(index=False))
        print("  features:", " ".join(str(v) for v in scored.iloc[0, 1:]))

        step("BES: upload a CSV to Azurite, submit, start, poll, read the output via its SAS URL")
        rows = az.datasets.synthetic_reviews(2000, seed=1)[["Col2"]]
        container = info["storage_container"]
        name = f"demo-{uuid.uuid4().hex[:8]}"
        blobs = BlobServiceClient.from_connection_string(info["storage_connection_string"])
        blobs.get_blob_client(container, f"{name}.csv").upload_blob(rows.to_csv(index=False).encode())
        where = {"ConnectionString": info["storage_connection_string"]}
        job_body = {"Inputs": {"input1": {**where, "RelativeLocation": f"/{container}/{name}.csv"}},
                    "Outputs": {"output1": {**where, "RelativeLocation": f"/{container}/{name}-out.csv"}},
                    "GlobalParameters": {}}
        jobs = f"{info['base_url']}{svc.path}/jobs"
        job_id = requests.post(jobs + "?api-version=2.0", json=job_body, headers=headers, timeout=30).json()
        print(f"  submitted job {job_id} ({len(rows)} rows)")
        requests.post(f"{jobs}/{job_id}/start?api-version=2.0", headers=headers, timeout=30)
        started = time.monotonic()
        while True:
            status = requests.get(f"{jobs}/{job_id}?api-version=2.0", headers=headers, timeout=30).json()
            if status["StatusCode"] in ("Finished", "Failed", "Cancelled"):
                break
            time.sleep(0.2)
        print(f"  {status['StatusCode']} after {time.monotonic() - started:.1f} s"
              + (f": {status['Details']}" if status["Details"] else ""))
        if status["StatusCode"] == "Finished":
            result = status["Results"]["output1"]
            print(f"  BaseLocation {result['BaseLocation']}, RelativeLocation {result['RelativeLocation']}")
            out = pd.read_csv(io.BytesIO(requests.get(result["BaseLocation"] + result["RelativeLocation"]
                                                      + result["SasBlobToken"], timeout=30).content),
                              dtype={"Col2": str}, keep_default_na=False)
            same = out.equals(az.feature_hashing(rows, ["Col2"], bitsize=3).astype(out.dtypes.to_dict()))
            print(out.head(3).to_string(index=False, max_colwidth=30))
            print(f"  {len(out)} rows; equal to local feature_hashing: {same}")
    finally:
        if own:
            stack.stop()


def gateway_demo(stack) -> None:
    """The library's way: ``WebService`` through the gateway with a subscription key, then usage."""
    step("The library through the gateway: WebService.from_info(stack.info())")
    svc = az.WebService.from_info(stack.info())  # the gateway and its subscription key, no backend key
    print(f"  {svc!r}")

    step("score() through the gateway: 20,000 synthetic reviews in concurrent batches")
    rows = az.datasets.synthetic_reviews(20_000, seed=2)[["Col2"]]
    started = time.monotonic()
    scored = svc.score(rows, progress=False)
    seconds = time.monotonic() - started
    local = az.feature_hashing(rows, ["Col2"], bitsize=3)
    same = scored.iloc[:, 1:].to_numpy().tolist() == local.iloc[:, 1:].to_numpy().tolist()
    print(f"  {len(scored):,} rows in {seconds:.1f} s ({len(scored) / seconds:,.0f} rows/s); "
          f"same order and counts as local feature_hashing: {same}")

    step("submit_batch() through the gateway: upload, submit, start, wait, read the output")
    job = svc.submit_batch(rows.head(2_000), cleanup=True)
    result = job.result(timeout=120, progress=False)
    print(f"  job {job.id}: {job.status.name}, {len(result):,} rows back")

    step("Gateway usage report, by operation (the APIM Reports API's fields)")
    report = stack.gateway.usage.report(by="operation")
    print(report.round(1).to_string(index=False))
    print("  (bandwidth in bytes; apiTimeAvg and serviceTimeAvg in ms)")


def pictures_demo(out: Path, *, stack=None) -> list[Path]:
    """Write a PNG of each view in :mod:`azml_nb.plots` into *out*; return their paths.

    Uses the running offline *stack* (its gateway and service) when given, else starts the
    web-service host and gateway without storage for the time it takes. Drawn with the Agg
    backend (no display needed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import requests

    from . import plots
    from .apim import API_SUFFIX

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig, name: str) -> None:
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
        print(f"  wrote {path}")

    step("Pictures: hashed features of the book reviews (bitsize 4)")
    reviews = az.datasets.book_reviews().head(12).reset_index(drop=True)
    hashed = az.feature_hashing(reviews[["Col2"]], ["Col2"], bitsize=4)
    save(plots.hashed_heatmap(hashed, max_label_chars=40).figure, "hashed_heatmap.png")

    own = stack is None
    if own:
        from .local import start

        stack = start(storage=False)
    try:
        info = stack.info()
        svc = az.WebService.from_info(info, gateway=False)
        step("Pictures: local Feature Hashing against the published service (bitsize 3)")
        local = az.feature_hashing(reviews[["Col2"]], ["Col2"], bitsize=3)
        served = svc.score(reviews[["Col2"]], progress=False)
        save(plots.hashed_diff(local, served, names=("local", "service")), "hashed_diff_local_vs_service.png")
        step("Pictures: bitsize 3 against bitsize 6 (folded onto 8 buckets)")
        wide = az.feature_hashing(reviews[["Col2"]], ["Col2"], bitsize=6)
        save(plots.hashed_diff(local, wide, names=("bitsize 3", "bitsize 6")), "hashed_diff_bitsizes.png")

        step("Pictures: collisions against bitsize, 2,000 synthetic reviews")
        corpus = az.datasets.synthetic_reviews(2000, seed=0)["Col2"]
        save(plots.collision_curve(corpus, bitsizes=range(1, 21)).figure, "collision_curve.png")

        step("Pictures: gateway usage (starter and unlimited keys, a wrong key, a wrong column)")
        gw = stack.gateway
        url = f"{gw.api_url(API_SUFFIX)}/workspaces/{info['workspace']}/services/{info['service']}" \
              "/execute?api-version=2.0&details=true"
        good = {"Inputs": {"input1": {"ColumnNames": ["Col2"], "Values": [["This is a good day"]]}},
                "GlobalParameters": {}}
        bad = {"Inputs": {"input1": {"ColumnNames": ["Text"], "Values": [["a wrong column"]]}}}
        # subscriptions of its own, so the demo's own keys keep their rate limit and quota
        before = len(gw.usage)
        keys = {"unlimited": gw.subscribe("unlimited", display_name="pictures demo").primary_key,
                "starter": gw.subscribe("starter", display_name="pictures demo").primary_key,
                "wrong": "not-a-key"}
        with requests.Session() as http:
            for i in range(48):
                which = ("starter" if i % 4 == 1 else "wrong" if i % 11 == 5 else "unlimited")
                body = bad if i % 9 == 7 else good
                http.post(url, json=body, headers={"Ocp-Apim-Subscription-Key": keys[which]}, timeout=30)
                time.sleep(0.03)
        records = gw.usage.frame().iloc[before:]
        print(f"  {len(records)} calls recorded: {records['outcome'].value_counts().to_dict()}")
        save(plots.usage_dashboard(records), "usage_dashboard.png")
    finally:
        if own:
            stack.stop()
    return written


def notebooks_demo(out: Path, *, stack, paths=None) -> list[dict]:
    """Execute every workshop notebook against the running offline *stack*.

    Each notebook runs headless (nbclient) with the stack's details as ``AZML_*`` variables,
    the way ``make lab`` and Binder run them. Writes ``out/notebooks/NN_*.html`` (the
    executed notebook) and ``out/plots/NN_*-K.png`` (each picture it drew); returns one
    summary dict per notebook (name, ok, seconds, cells, plots, html, error). *paths* picks
    the notebooks (default: every ``notebooks/NN_*.ipynb``).
    """
    from . import _notebooks

    out = Path(out)
    pages, pictures = out / "notebooks", out / "plots"
    pages.mkdir(parents=True, exist_ok=True)
    env = _notebooks.stack_env(stack.info())
    # notebook 04 writes its APIM export; keep it inside the output folder
    parameters = {"04_api_management.ipynb": {"export_dir": str((out / "apim").resolve())}}
    summary = []
    for path in map(Path, paths if paths is not None else _notebooks.notebook_paths()):
        step(f"Notebook {path.name}")
        started = time.monotonic()
        error = None
        try:
            nb = _notebooks.execute(path, env=env, parameters=parameters.get(path.name),
                                    cwd=out, timeout=600)
        except Exception as err:  # report it, keep going with the next notebook
            nb = getattr(err, "notebook", None)
            error = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        seconds = time.monotonic() - started
        html = plots = None
        if nb is not None:
            html = pages / f"{path.stem}.html"
            html.write_text(_notebooks.to_html(nb), encoding="utf-8")
            plots = _notebooks.save_images(nb, pictures, path.stem)
        cells = sum(1 for c in nb.cells if c.cell_type == "code") if nb is not None else 0
        print(f"  {'ran' if error is None else 'FAILED'} in {seconds:.1f} s: {cells} code cells, "
              f"{_pictures(len(plots or []))} -> {html}" + (f"\n  error: {error}" if error else ""))
        summary.append({"name": path.name, "ok": error is None, "seconds": seconds, "cells": cells,
                        "plots": len(plots or []), "html": html, "error": error})
    return summary


def _pictures(n: int) -> str:
    return f"{n} picture" + ("" if n == 1 else "s")


def _print_summary(summary: list[dict], out: Path) -> None:
    step("Summary")
    width = max(len(s["name"]) for s in summary) if summary else 10
    for s in summary:
        print(f"  {s['name']:<{width}}  {'ok    ' if s['ok'] else 'FAILED'}  {s['seconds']:6.1f} s  "
              f"{_pictures(s['plots']):<10}  {s['html'] or ''}")
    print(f"\n  Open {out.resolve() / 'notebooks'} in a browser for the executed notebooks; "
          f"pictures are in {out.resolve() / 'plots'} and {out.resolve() / 'pictures'}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m azml_nb.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for pictures and notebooks")
    parser.add_argument("--no-notebooks", action="store_true",
                        help="skip executing the notebooks (the terminal walkthrough only)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    payload_demo()
    from .local import start

    step("Offline stack: Azurite, the local web-service host and the APIM-style gateway")
    with start() as stack:
        info = stack.info()
        print(f"  web services at {info['base_url']}, gateway at {info.get('gateway_url')}")
        stack_demo(stack)
        gateway_demo(stack)
        pictures_demo(args.out / "pictures", stack=stack)
        summary = [] if args.no_notebooks else notebooks_demo(args.out, stack=stack)
    if summary:
        _print_summary(summary, args.out)
    return 0 if all(s["ok"] for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
