"""`azml-nb score` and `azml-nb batch`: CSV in, CSV out, credentials from --info or AZML_* variables."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from azml_nb.cli import main
from azml_nb.datasets import synthetic_reviews
from azml_nb.hashing import feature_hashing

pytestmark = pytest.mark.integration


@pytest.fixture
def files(local_stack, tmp_path):
    info = tmp_path / "serve.json"
    info.write_text(json.dumps(local_stack.info()) + "\n")
    df = synthetic_reviews(120, seed=12)[["Col2"]]
    src = tmp_path / "in.csv"
    df.to_csv(src, index=False)
    expected = feature_hashing(df, ["Col2"], bitsize=3, ngrams=2)
    return info, src, expected, tmp_path


def test_score_from_serve_json(files, capsys):
    info, src, expected, tmp = files
    out = tmp / "out.csv"
    assert main(["score", str(src), "-o", str(out), "--info", str(info), "--batch-size", "50"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), expected, check_dtype=False)
    err = capsys.readouterr().err
    assert "120/120" in err                        # the progress bar went to stderr
    assert json.loads(info.read_text())["api_key"] not in err


def test_score_from_environment_to_stdout(files, local_stack, monkeypatch, capsys):
    info, src, expected, tmp = files
    data = local_stack.info()
    for key in ("workspace", "service", "api_key", "base_url"):
        monkeypatch.setenv(f"AZML_{key.upper()}", data[key])
    monkeypatch.delenv("AZML_GATEWAY_URL", raising=False)
    assert main(["score", str(src), "--no-progress", "--param", "Hashing bitsize=2"]) == 0
    out = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert out.shape == (120, 5)


def test_batch_then_reattach_by_job_id(files, capsys):
    info, src, expected, tmp = files
    out = tmp / "batch.csv"
    assert main(["batch", str(src), "-o", str(out), "--info", str(info), "--direct", "--cleanup"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), expected, check_dtype=False)
    assert "Finished" in capsys.readouterr().err
    assert main(["batch", str(src), "--info", str(info), "--direct", "--no-wait"]) == 0
    job_id = capsys.readouterr().out.strip()
    again = tmp / "again.csv"
    assert main(["batch", "--job", job_id, "-o", str(again), "--info", str(info), "--direct",
                 "--no-progress"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(again), expected, check_dtype=False)


def test_errors_exit_nonzero_with_a_message(files, capsys):
    info, src, expected, tmp = files
    bad = tmp / "bad.csv"
    pd.DataFrame({"Col1": [1], "Col2": ["x"]}).to_csv(bad, index=False)
    assert main(["score", str(bad), "--info", str(info), "--no-progress"]) == 1
    assert "expected: Col2 (string)" in capsys.readouterr().err
