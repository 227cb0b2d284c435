"""Benchmark: DataFrame <-> AzureML payload on a 1,000,000 x 8 mixed frame.

(a) encode: ``to_payload`` + ``azml_nb.payload.dumps`` to UTF-8 JSON bytes, against
    the naive way (``json.dumps(df.astype(str).values.tolist())``) and pandas
    ``to_json(orient="split")``;
(b) decode: bytes of a string-valued response (as the service sends it) to a typed frame
    with ``from_response``, against ``json.loads`` + ``DataFrame`` + ``astype`` and pandas
    ``read_json(orient="split")``.

Also checks that every float survives the round trip exactly (and counts how many do not
through pandas ``to_json``/``read_json``) and measures the peak memory of the encode with
``tracemalloc``. Run::

    .venv/bin/python benchmarks/bench_payload.py            # 1,000,000 rows
    .venv/bin/python benchmarks/bench_payload.py --rows 100000 --repeat 3
"""
from __future__ import annotations

import argparse
import gc
import io
import json
import sys
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd

from azml_nb import payload as P

TARGETS = {  # ratio name -> minimum
    "encode vs naive": 3.0,
    "encode vs pandas split": 4.0,
    "decode vs json.loads+DataFrame+astype": 3.0,
}


def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """2 int64, 2 float64 with NaN, 2 short strings, 1 bool, 1 datetime64."""
    rng = np.random.default_rng(seed)
    score = rng.standard_normal(rows)
    score[rng.random(rows) < 0.1] = np.nan
    ratio = rng.random(rows) * 1000
    ratio[rng.random(rows) < 0.05] = np.nan
    words = np.array([f"w{i:04d}" for i in range(5000)])
    return pd.DataFrame({
        "id": np.arange(rows, dtype=np.int64),
        "count": rng.integers(-1_000_000, 1_000_000, rows),
        "score": score,
        "ratio": ratio,
        "label": words[rng.integers(0, len(words), rows)],
        "city": np.array(["Budapest", "Győr", "Pécs", "Szeged", "Eger"])[rng.integers(0, 5, rows)],
        "flag": rng.random(rows) < 0.5,
        "when": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 5 * 365 * 86400, rows), unit="s"),
    })


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        out = None
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs for each timing")
    ap.add_argument("--no-anchors", action="store_true", help="time only azml_nb (quick profiling)")
    ap.add_argument("--json", choices=["auto", "stdlib"], default="auto",
                    help="stdlib: run azml_nb.payload without orjson (its fallback path)")
    args = ap.parse_args(argv)
    if args.json == "stdlib":
        P._orjson = None

    df = make_frame(args.rows)
    frame_bytes = int(df.memory_usage(deep=True, index=False).sum())
    names = list(df.columns)
    print(f"frame: {args.rows:,} x {df.shape[1]} ({', '.join(f'{c}:{t}' for c, t in df.dtypes.items())}), "
          f"{frame_bytes / 2**20:.0f} MiB; JSON backend: {'orjson' if P._orjson else 'json (stdlib)'}; "
          f"pandas {pd.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}")

    # (a) encode
    t_enc, body = best(lambda: P.dumps(P.to_payload(df)), args.repeat)
    # (b) decode a string-valued response. Missing values as null, so that the naive anchor's
    # astype works on it; the service's own form (missing as "") is timed too.
    response = P.dumps({"Results": {"output1": {"type": "table", "value": {
        "ColumnNames": names, "ColumnTypes": P.column_types(df),
        "Values": P.to_payload(df, numbers_as_strings=True)["Inputs"]["input1"]["Values"]}}}})
    t_dec, back = best(lambda: P.from_response(response), args.repeat)
    service_response = P.dumps(P.to_response(df))
    t_dec2, back2 = best(lambda: P.from_response(service_response), args.repeat)
    pd.testing.assert_frame_equal(back, back2)
    back2 = service_response = None
    results = {"encode (to_payload + dumps)": t_enc, "decode (from_response), missing as null": t_dec,
               "decode (from_response), missing as \"\" (to_response's form)": t_dec2}

    # correctness: typed, and every float exact (bit for bit, NaN where NaN)
    assert list(back.columns) == names
    for col in names:
        a, b = df[col].to_numpy(), back[col].to_numpy()
        if a.dtype.kind == "f":
            assert b.dtype == a.dtype and np.array_equal(a.view(np.int64), b.view(np.int64)) or \
                np.array_equal(a, b, equal_nan=True), col
        elif a.dtype.kind == "M":
            assert (a.astype("datetime64[s]") == b.astype("datetime64[s]")).all(), col
        else:
            assert b.dtype.kind == a.dtype.kind or str(b.dtype) == str(a.dtype), (col, b.dtype)
            assert (pd.Series(a) == pd.Series(b)).all(), col
    req = P.loads(body)["Inputs"]["input1"]["Values"]
    sent = np.array([r[2] if r[2] is not None else np.nan for r in req])
    assert np.array_equal(sent, df["score"].to_numpy(), equal_nan=True)
    del req, sent
    lines = [f"floats exact through azml_nb (request and response): yes "
             f"({int(df[['score', 'ratio']].notna().sum().sum()):,} values)"]

    if not args.no_anchors:
        def naive_encode():
            return json.dumps(df.astype(str).values.tolist()).encode("utf-8")
        t_naive, naive = best(naive_encode, args.repeat)
        lines.append(f"naive output is valid strict JSON: {_strict_ok(naive)} (pandas 3 astype(str) leaves NaN)")
        del naive
        with warnings.catch_warnings():   # pandas 3 warns that its default date format will change
            warnings.simplefilter("ignore")
            t_split, split = best(lambda: df.to_json(orient="split").encode("utf-8"), args.repeat)

        types = dict(zip(names, ["int64", "int64", "float64", "float64", "str", "str", "bool", "datetime64[s]"]))

        def naive_decode():
            obj = json.loads(response)
            value = obj["Results"]["output1"]["value"]
            return pd.DataFrame(value["Values"], columns=value["ColumnNames"]).astype(types)
        t_naive_dec, _ = best(naive_decode, args.repeat)
        t_read, pback = best(lambda: pd.read_json(io.BytesIO(split), orient="split"), args.repeat)
        changed = sum(int((~((pback[c].to_numpy() == df[c].to_numpy()) | df[c].isna().to_numpy())).sum())
                      for c in ("score", "ratio"))
        lines.append(f"floats changed by pandas to_json/read_json: {changed:,} of "
                     f"{int(df[['score', 'ratio']].notna().sum().sum()):,}")
        del pback, split
        results.update({"anchor: naive json.dumps(df.astype(str).values.tolist())": t_naive,
                        "anchor: pandas to_json(orient='split')": t_split,
                        "anchor: json.loads + DataFrame + astype": t_naive_dec,
                        "anchor: pandas read_json(orient='split')": t_read})
        ratios = {"encode vs naive": t_naive / t_enc,
                  "encode vs pandas split": t_split / t_enc,
                  "decode vs json.loads+DataFrame+astype": t_naive_dec / t_dec,
                  "decode vs pandas read_json split": t_read / t_dec}
    else:
        ratios = {}

    # peak memory of the encode (a separate run: tracemalloc slows things down)
    del body, back
    gc.collect()
    tracemalloc.start()
    out = P.dumps(P.to_payload(df))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    lines.append(f"encode peak memory: {peak / 2**20:.0f} MiB = {peak / frame_bytes:.2f}x the frame's "
                 f"{frame_bytes / 2**20:.0f} MiB (target <= 3x); payload {len(out) / 2**20:.0f} MiB")
    del out

    print()
    for name, t in results.items():
        print(f"{name:<62} {t:7.3f} s")
    print()
    for line in lines:
        print(line)
    ok = peak <= 3 * frame_bytes
    for name, r in ratios.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else ("  ok" if r >= target else f"  MISSED (target >= {target:g}x)")
        ok &= target is None or r >= target
        print(f"{name:<45} {r:6.2f}x{verdict}")
    return 0 if ok else 1


def _strict_ok(data: bytes) -> bool:
    try:
        json.loads(data, parse_constant=lambda t: (_ for _ in ()).throw(ValueError(t)))
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
