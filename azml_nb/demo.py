"""``make demo``: the walkthrough in the terminal, on the offline stack.

Run as ``python -m azml_nb.demo [--out DIR]``. Each step prints what it did; pictures and
executed notebooks land in ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

import azml_nb as az


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def payload_demo() -> None:
    step("A DataFrame becomes a request body (classic format)")
    df = pd.DataFrame({"Col2": ["This is a good day"]})
    print(json.dumps(az.to_payload(df), indent=2))

    step("A response body becomes a typed DataFrame")
    columns = [f"Col2_HashingFeature.{i}" for i in range(8)]
    body = {"Results": {"output1": {"type": "table", "value": {
        "ColumnNames": columns, "ColumnTypes": ["Int32"] * 8,
        "Values": [["1", "1", "2", "2", "0", "2", "0", "1"]]}}}}
    frame = az.from_response(body)
    print(frame.to_string())
    print(frame.dtypes.value_counts().to_string())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m azml_nb.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for pictures and notebooks")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    payload_demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
