"""Sample data: the shipped book reviews and the synthetic corpus generator."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from azml_nb import datasets


def test_book_reviews_shape_and_content():
    df = datasets.book_reviews()
    assert list(df.columns) == ["Col1", "Col2"]
    assert 200 <= len(df) <= 1000
    assert df["Col1"].dtype == np.int64 and set(df["Col1"]) == {1, 2, 3, 4, 5}
    assert all(isinstance(t, str) and t.strip() for t in df["Col2"])
    assert df["Col2"].is_unique
    assert df["Col2"].str.contains(r"\d").sum() >= 20          # some digits
    assert df["Col2"].str.contains(r"[,;!?$']").sum() >= 50    # and punctuation
    assert df["Col2"].str.split().str.len().between(3, 120).all()


def test_book_reviews_returns_a_copy():
    df = datasets.book_reviews()
    df.loc[0, "Col2"] = "changed"
    assert datasets.book_reviews().loc[0, "Col2"] != "changed"


def test_synthetic_reviews_reproducible_and_shaped():
    a = datasets.synthetic_reviews(2000, seed=5)
    assert a.equals(datasets.synthetic_reviews(2000, seed=5))
    assert not a.equals(datasets.synthetic_reviews(2000, seed=6))
    assert list(a.columns) == ["Col1", "Col2"] and a.index.equals(pd.RangeIndex(2000))
    assert a["Col1"].between(1, 5).all()
    lengths = a["Col2"].str.split().str.len()
    assert lengths.min() >= 1 and 30 <= lengths.mean() <= 60 and lengths.max() > 150
    assert a["Col2"].str.contains(r"\b\d+\b").mean() > 0.2
    assert a["Col2"].str.contains(r"[.,!?]").mean() > 0.5


def test_synthetic_vocabulary_is_zipf_like():
    words = " ".join(datasets.synthetic_reviews(3000, seed=1)["Col2"]).lower().split()
    counts = np.sort(pd.Series(words).value_counts().to_numpy())[::-1]
    # frequency falls roughly as 1/rank: the slope of log f against log r is near -1
    ranks = np.arange(1, len(counts) + 1)
    top = slice(0, 1000)
    slope = np.polyfit(np.log(ranks[top]), np.log(counts[top]), 1)[0]
    assert -1.5 < slope < -0.6
    assert len(counts) > 5000


@pytest.mark.parametrize("n", [-1, 2.5, True])
def test_synthetic_reviews_rejects_bad_n(n):
    with pytest.raises(ValueError, match="n must be"):
        datasets.synthetic_reviews(n)


def test_synthetic_reviews_zero_rows():
    assert datasets.synthetic_reviews(0).shape == (0, 2)
