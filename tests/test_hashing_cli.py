"""`azml-nb hash`: CSV in, CSV out."""
from __future__ import annotations

import io
import subprocess
import sys

import pandas as pd
import pytest

import azml_nb as az
from azml_nb.cli import main

CSV = "Col1,Col2,Other\n4,This is a good day,x\n5,,y\n1,12 12,z\n"


def test_file_to_file(tmp_path):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(CSV)
    assert main(["hash", str(src), "-o", str(dst), "--columns", "Col2", "--bitsize", "3",
                 "--ngrams", "2"]) == 0
    out = pd.read_csv(dst)
    assert list(out.columns) == ["Col1", "Col2", "Other"] + [f"Col2_HashingFeature.{i}" for i in range(8)]
    assert out.iloc[0, 3:].tolist() == [1, 1, 2, 2, 0, 2, 0, 1]
    assert out.iloc[1, 3:].sum() == 0
    expected = az.feature_hashing(pd.read_csv(io.StringIO(CSV), dtype={"Col2": "str"}),
                                  "Col2", 3, 2)
    assert out.iloc[:, 3:].to_numpy().tolist() == expected.iloc[:, 3:].to_numpy().tolist()


def test_stdin_to_stdout_in_a_child_process():
    run = subprocess.run([sys.executable, "-m", "azml_nb.cli", "hash", "-", "--columns",
                          "Col2,Other", "--bitsize", "2", "--ngrams", "1"],
                         input=CSV, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = pd.read_csv(io.StringIO(run.stdout))
    assert list(out.columns[3:]) == [f"Col2_HashingFeature.{i}" for i in range(4)] + \
        [f"Other_HashingFeature.{i}" for i in range(4)]
    assert out.shape == (3, 11)


def test_digit_only_column_is_read_as_text(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("Col2\n12\n7\n")
    assert main(["hash", str(src), "--columns", "Col2", "--bitsize", "3", "--ngrams", "1"]) == 0
    out = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert out.iloc[:, 1:].to_numpy().tolist() == [[0, 0, 0, 0, 1, 0, 0, 0],
                                                   [0, 0, 0, 0, 0, 0, 0, 1]]


@pytest.mark.parametrize("argv,message", [
    (["--bitsize", "0"], "bitsize must be in 1..31, got 0"),
    (["--ngrams", "11"], "ngrams must be in 0..10, got 11"),
    (["--columns", "Nope"], "Nope"),
    (["--bitsize", "25"], "sparse=True"),
])
def test_errors_are_one_line_on_stderr(tmp_path, capsys, argv, message):
    src = tmp_path / "in.csv"
    src.write_text(CSV)
    args = ["hash", str(src)] + (argv if "--columns" in argv else ["--columns", "Col2"] + argv)
    assert main(args) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
