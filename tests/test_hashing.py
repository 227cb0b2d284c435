"""Feature Hashing: the docs example, the algorithm, parameters, frames, sparse form."""
from __future__ import annotations

import math
from collections import Counter

import mmh3
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import azml_nb as az
from azml_nb import hashing
from azml_nb.errors import PayloadError, SchemaError


def reference_buckets(text, bitsize, ngrams):
    """The algorithm of DESIGN.md, written out token by token with Python integers:
    {bucket: count} of the non-zero buckets."""
    def h(tok):
        if tok.isascii() and tok.isdigit():
            return int(tok)
        return mmh3.hash(tok.encode("utf-8"), 0, signed=False)
    out = Counter()
    if text is None:
        return out
    hs = [h(t) for t in text.split()]
    for i in range(len(hs)):
        acc = 0
        for k in range(max(ngrams, 1)):
            if i + k >= len(hs):
                break
            acc = hs[i] if k == 0 else (acc * 27942141 + hs[i + k]) % 2**64
            out[acc & ((1 << bitsize) - 1)] += 1
    return out


def reference_counts(text, bitsize, ngrams):
    counts = [0] * (1 << bitsize)
    for bucket, count in reference_buckets(text, bitsize, ngrams).items():
        counts[bucket] = count
    return counts


def test_docs_example():
    got = az.hash_text("This is a good day", bitsize=3, ngrams=2)
    assert got.tolist() == [1, 1, 2, 2, 0, 2, 0, 1]
    assert got.dtype == np.int32 and got.sum() == 9


def test_docs_example_through_a_frame():
    df = pd.DataFrame({"Col2": ["This is a good day"]})
    out = az.feature_hashing(df, ["Col2"], bitsize=3, ngrams=2)
    assert list(out.columns) == ["Col2"] + [f"Col2_HashingFeature.{i}" for i in range(8)]
    assert out.iloc[0, 1:].tolist() == [1, 1, 2, 2, 0, 2, 0, 1]


@pytest.mark.parametrize("text", [
    "", "   ", "a", "a a a a", "12 12 007 4294967296 18446744073709551617",
    "Ünïcödé 漢字 😀 mixed CASE case", "tab\tand\nnewline  spaces",
    " ".join(str(i % 7) + "w" for i in range(300)),
])
@pytest.mark.parametrize("bitsize,ngrams", [(1, 1), (3, 2), (10, 3), (18, 5), (31, 10), (5, 0)])
def test_matches_reference(text, bitsize, ngrams):
    matrix = hashing.hash_texts([text], bitsize, ngrams, sparse=True)
    assert matrix.shape == (1, 2**bitsize)
    got = dict(zip(matrix.indices.tolist(), matrix.data.tolist()))
    assert got == reference_buckets(text, bitsize, ngrams)
    if bitsize <= 18:
        assert az.hash_text(text, bitsize, ngrams).tolist() == reference_counts(text, bitsize, ngrams)


def test_dense_hash_text_refused_at_31_bits():
    with pytest.raises(MemoryError, match="sparse=True"):
        az.hash_text("a", bitsize=31)


def test_ngrams_zero_means_single_words():
    text = "the cat sat on the mat"
    assert (az.hash_text(text, 8, 0) == az.hash_text(text, 8, 1)).all()
    assert az.hash_text(text, 8, 0).sum() == 6


def test_long_digit_token_beyond_int_str_limit():
    token = "9" * 5000
    assert hashing.token_hash(token) == (10**5000 - 1) % 2**32


@pytest.mark.parametrize("name,value,text", [
    ("bitsize", 0, "bitsize must be in 1..31, got 0"),
    ("bitsize", 32, "bitsize must be in 1..31, got 32"),
    ("ngrams", -1, "ngrams must be in 0..10, got -1"),
    ("ngrams", 11, "ngrams must be in 0..10, got 11"),
    ("bitsize", 2.0, "bitsize must be an integer in 1..31"),
    ("ngrams", True, "ngrams must be an integer in 0..10"),
])
def test_parameters_validated(name, value, text):
    kwargs = {"bitsize": 3, "ngrams": 2, name: value}
    with pytest.raises(ValueError, match=text):
        az.hash_text("a b", **kwargs)
    with pytest.raises(ValueError, match=text):
        az.feature_hashing(pd.DataFrame({"t": ["a"]}), "t", **kwargs)


def test_missing_texts_are_zero_rows_and_index_kept():
    df = pd.DataFrame({"Col1": [1, 2, 3, 4, 5],
                       "Col2": ["a b", None, math.nan, pd.NA, "b a"]},
                      index=pd.Index(["e", "d", "c", "b", "a"], name="id"))
    out = az.feature_hashing(df, "Col2", bitsize=4, ngrams=2)
    assert out.index.equals(df.index)
    assert out["Col1"].tolist() == [1, 2, 3, 4, 5]
    counts = out.filter(like="_HashingFeature.").to_numpy()
    assert counts[1:4].sum() == 0
    assert counts[0].tolist() == reference_counts("a b", 4, 2)
    assert counts[4].tolist() == reference_counts("b a", 4, 2)


def test_string_dtype_column():
    df = pd.DataFrame({"t": pd.array(["x y", None, "y"], dtype="string")})
    out = az.feature_hashing(df, "t", bitsize=3, ngrams=2)
    assert out.iloc[:, 1:].to_numpy().tolist() == [
        reference_counts("x y", 3, 2), [0] * 8, reference_counts("y", 3, 2)]


def test_non_string_cell_names_column_and_row():
    df = pd.DataFrame({"Col2": ["fine", 42, "ok"]}, index=[7, 8, 9])
    with pytest.raises(PayloadError, match=r"column 'Col2', row 8 \(position 1\).*int 42.*stringify") as info:
        az.feature_hashing(df, "Col2", bitsize=3)
    assert info.value.column == "Col2" and info.value.row == 8
    out = az.feature_hashing(df, "Col2", bitsize=3, stringify=True)
    assert out.iloc[1, 1:].tolist() == reference_counts("42", 3, 2)


def test_unknown_or_repeated_column():
    df = pd.DataFrame({"Col2": ["a"]})
    with pytest.raises(SchemaError, match="Nope"):
        az.feature_hashing(df, "Nope")
    with pytest.raises(SchemaError, match="twice"):
        az.feature_hashing(df, ["Col2", "Col2"])
    doubled = pd.DataFrame([["a", "b"]], columns=["Col2", "Col2"])
    with pytest.raises(SchemaError, match="more than once"):
        az.feature_hashing(doubled, "Col2")


def test_taken_names_get_next_free_suffix():
    df = pd.DataFrame({"Col2": ["a b"], "Col2_HashingFeature.1": [9],
                       "Col2_HashingFeature.1_2": [8]})
    out = az.feature_hashing(df, "Col2", bitsize=1, ngrams=1)
    assert list(out.columns) == ["Col2", "Col2_HashingFeature.1", "Col2_HashingFeature.1_2",
                                 "Col2_HashingFeature.0", "Col2_HashingFeature.1_3"]
    assert out["Col2_HashingFeature.1"].tolist() == [9]


def test_several_columns():
    df = pd.DataFrame({"a": ["x y"], "b": ["y x z"]})
    out = az.feature_hashing(df, ["a", "b"], bitsize=2, ngrams=1)
    assert list(out.columns[2:]) == [f"a_HashingFeature.{i}" for i in range(4)] + \
        [f"b_HashingFeature.{i}" for i in range(4)]
    assert out.iloc[0, 2:6].tolist() == reference_counts("x y", 2, 1)
    assert out.iloc[0, 6:].tolist() == reference_counts("y x z", 2, 1)


def test_sparse_equals_dense_and_dense_bound():
    df = az.datasets.synthetic_reviews(300, seed=3)
    dense = az.feature_hashing(df, "Col2", bitsize=8, ngrams=3)
    result = az.feature_hashing(df, "Col2", bitsize=8, ngrams=3, sparse=True)
    assert isinstance(result.matrix, sp.csr_matrix) and result.matrix.has_canonical_format
    assert result.columns == list(dense.columns[2:]) and result.sources == ("Col2",)
    assert result.frame is df
    pd.testing.assert_frame_equal(result.to_frame(), dense)
    with pytest.raises(MemoryError, match="sparse=True"):
        az.feature_hashing(df, "Col2", bitsize=20)
    with pytest.raises(MemoryError, match="sparse=True"):
        result.to_frame(max_dense_bytes=1000)


def test_dense_bound_counts_column_overhead():
    df = pd.DataFrame({"Col2": pd.Series([], dtype=object)})
    with pytest.raises(MemoryError, match="sparse=True"):
        az.feature_hashing(df, "Col2", bitsize=24)     # no rows, but 16 million columns
    result = az.feature_hashing(df, "Col2", bitsize=24, sparse=True)
    assert result.matrix.shape == (0, 2**24)


def test_empty_frame():
    df = pd.DataFrame({"Col2": pd.Series([], dtype=object)})
    out = az.feature_hashing(df, "Col2", bitsize=2)
    assert out.shape == (0, 5)


# --- the vectorised tokenizer against the plain one --------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

_PIECES = st.sampled_from(
    [" ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u1680",
     "\u2003", "\u2028", "\u3000", "\u200b", "0", "7", "42", "007", "4294967296",
     "18446744073709551617", "a", "ab", "abc", "abcd", "abcde", "Éé", "漢字", "😀", "\ud800",
     "x1", "1x", "١٢", "²", ":", "|", "\x00"])
_TEXTS = st.lists(st.one_of(st.none(), st.text(max_size=30),
                            st.lists(_PIECES, max_size=25).map("".join)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(_TEXTS)
def test_vectorised_tokenizer_equals_str_split(texts):
    fast_hashes, fast_lengths = hashing._tokenize(texts)
    ref_hashes, ref_lengths = hashing._tokenize_python(texts)
    assert fast_lengths.tolist() == ref_lengths.tolist()
    assert fast_hashes.tolist() == ref_hashes.tolist()


def test_vectorised_tokenizer_on_a_corpus():
    texts = az.datasets.synthetic_reviews(3000, seed=11)["Col2"].tolist()
    texts += ["x" * n for n in range(0, 70)] + ["9" * n for n in range(1, 70)]
    fast, ref = hashing._tokenize(texts), hashing._tokenize_python(texts)
    assert np.array_equal(fast[0], ref[0]) and np.array_equal(fast[1], ref[1])


def test_very_long_tokens_take_the_per_token_path():
    texts = ["x" * 100_000 + " y", "7" * 100_000, "1" * 64 + " " + "2" * 65 + " é" * 40,
             "a" * 65 + "\u3000" + "b" * 64]
    fast, ref = hashing._tokenize(texts), hashing._tokenize_python(texts)
    assert fast[1].tolist() == ref[1].tolist() == [2, 1, 42, 2]
    assert fast[0].tolist() == ref[0].tolist()
    assert fast[0][2] == (7 * (10**100_000 - 1) // 9) % 2**32


def test_murmur3_known_vectors():
    # reference values of MurmurHash3_x86_32 with seed 0 (SMHasher / mmh3)
    texts = ["a", "ab", "abc", "abcd", "Hello, world!", "The quick brown fox jumps over the lazy dog"]
    hashes, _ = hashing._tokenize([t.replace(" ", "_") for t in texts])
    assert hashes.tolist() == [mmh3.hash(t.replace(" ", "_"), 0, signed=False) for t in texts]
    assert mmh3.hash("abc", 0, signed=False) == 0xB3DD93FA


def test_docstring_examples():
    import doctest
    from azml_nb import datasets
    for module in (hashing, datasets):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module.__name__


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(st.sampled_from(["a", "b", "7", "é", "0042"]),
                                               max_size=12).map(" ".join)), max_size=8),
       st.integers(1, 31), st.integers(0, 10))
def test_many_rows_match_reference(texts, bitsize, ngrams):
    matrix = hashing.hash_texts(texts, bitsize, ngrams, sparse=True)
    assert matrix.shape == (len(texts), 2**bitsize) and matrix.has_canonical_format
    for row, text in enumerate(texts):
        lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
        got = dict(zip(matrix.indices[lo:hi].tolist(), matrix.data[lo:hi].tolist()))
        assert got == reference_buckets(text, bitsize, ngrams)
    if bitsize <= 12:
        dense = hashing.hash_texts(texts, bitsize, ngrams)
        assert (dense == matrix.toarray()).all()


def test_bitsize_20_on_100000_rows_sparse_within_2_gb():
    """The issue's bound, measured as the peak resident set of a child process."""
    import subprocess
    import sys
    script = (
        "import azml_nb as az\n"
        "df = az.datasets.synthetic_reviews(100_000, seed=0)\n"
        "r = az.feature_hashing(df, 'Col2', bitsize=20, ngrams=2, sparse=True)\n"
        "assert r.matrix.shape == (100_000, 2**20) and r.matrix.nnz > 5_000_000\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    peak_mib = int(run.stdout.strip()) / 1024
    assert peak_mib < 2048, f"peak resident set {peak_mib:.0f} MiB"


def test_vw_syntax_characters_are_ordinary_locally():
    # '|' and ':' are VW syntax, so the oracle never sees them; locally they are part of words
    counts = az.hash_text("a:b x|y |", bitsize=21, ngrams=1)
    expected = reference_counts("a:b x|y |", 21, 1)
    assert counts.tolist() == expected
    bucket = mmh3.hash("a:b".encode(), 0, signed=False) & (2**21 - 1)
    assert counts[bucket] >= 1
