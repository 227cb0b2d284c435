"""Vowpal Wabbit as the oracle: local Feature Hashing counts == VW's own feature indices.

Each configuration runs VW (the ``vowpalwabbit`` package) in a child process over a data
file of generated texts with ``-b BITS --ngram N --audit -t --noconstant``; the ``--audit``
lines give every feature as ``name:index:value:weight``, where ``index`` is the weight slot
VW really uses (after its parse mask, n-gram folding, stride and weight mask). The local
result must count exactly those indices, text by text.

VW reads ``|`` as a namespace bar and ``:`` as a value separator, and splits only on space
and tab, so the oracle texts leave out ``|``, ``:``, newlines and other Unicode whitespace
(docs/hashing.md says how azml_nb treats them).
"""
from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from azml_nb import hashing

vw = pytest.importorskip("vowpalwabbit", reason="pip install vowpalwabbit (a test dependency)")

BITSIZES = (1, 3, 10, 18, 31)
NGRAMS = (1, 2, 3)

ASCII_WORDS = ["This", "is", "a", "good", "day", "the", "The", "THE", "book", "Book.", "great!",
               "don't", "(really)", "well-written", "\"quoted\"", "e-mail", "x", "I", "3rd",
               "1.5", "-4", "+7", "$20", "50%", "#1", "a,b", "end.", "C++", "~", "^", "_", "[b]"]
UNICODE_WORDS = ["café", "Ünïcödé", "straße", "naïve", "日本語", "漢字", "кнiга", "книга",
                 "βιβλίο", "كتاب", "😀", "👍🏽", "ﬁne", "Å", "Å", "ℌ", "𝔘", "·", "—", "€5"]
DIGIT_TOKENS = ["0", "00", "007", "1", "2", "12", "42", "1984", "2016", "65535", "4294967295",
                "4294967296", "4294967297", "18446744073709551615", "18446744073709551616",
                "99999999999999999999999", "123456789012345678901234567890123456789"]


def oracle_texts(count: int = 520, seed: int = 20160601) -> list[str]:
    """Texts for the oracle: varied, deterministic, with no '|', ':' or odd whitespace."""
    rng = random.Random(seed)
    pool = ASCII_WORDS + UNICODE_WORDS + DIGIT_TOKENS
    texts = ["", " ", "This is a good day", "a a a a a a", "12 12 12", "7 seven 7 seven"]
    while len(texts) < count:
        kind = rng.random()
        if kind < 0.05:
            n = 0
        elif kind < 0.15:
            n = rng.randint(200, 700)           # long
        else:
            n = rng.randint(1, 40)
        words = [rng.choice(pool) for _ in range(n)]
        if n and rng.random() < 0.3:             # repeated words and phrases
            words += words[: rng.randint(1, n)] * rng.randint(1, 3)
        gaps = [rng.choice([" ", " ", " ", " ", "  ", "\t", " \t "]) for _ in words]
        text = "".join(g + w for g, w in zip(gaps, words))
        texts.append(text[1:] if rng.random() < 0.7 else text + rng.choice(["", " ", "\t"]))
    assert not any(c in t for t in texts for c in "|:\n\r")
    return texts


AUDIT_SCRIPT = textwrap.dedent("""
    import sys
    from vowpalwabbit import pyvw
    w = pyvw.Workspace(sys.argv[1])
    w.run_parser()
    w.finish()
""")


def vw_indices(texts: list[str], bitsize: int, ngrams: int, tmp_path) -> list[Counter]:
    """Per text, Counter of the weight indices VW's audit reports."""
    data = tmp_path / f"b{bitsize}n{ngrams}.vw"
    data.write_bytes("".join(f"| {t}\n" for t in texts).encode("utf-8"))
    args = (f"-b {bitsize} --noconstant --audit -t --quiet --sparse_weights -d {data}"
            + (f" --ngram {ngrams}" if ngrams > 1 else ""))
    run = subprocess.run([sys.executable, "-c", AUDIT_SCRIPT, args], capture_output=True,
                         check=True, timeout=120)
    lines = run.stdout.decode("utf-8").split("\n")
    # each example prints its prediction line, then one audit line of tab-led features
    audit = lines[1::2][: len(texts)]
    assert len(audit) == len(texts), run.stderr.decode()[-2000:]
    result = []
    for line in audit:
        items = [item for item in line.split("\t") if item]
        result.append(Counter(int(item.rsplit(":", 3)[1]) for item in items))
    return result


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return oracle_texts()


def test_oracle_corpus_is_varied(texts):
    assert len(texts) >= 500
    assert sum(not t.split() for t in texts) >= 10
    assert sum(len(t.split()) >= 200 for t in texts) >= 30
    assert sum(any(ord(c) > 127 for c in t) for t in texts) >= 300
    assert sum(any(tok in DIGIT_TOKENS for tok in t.split()) for t in texts) >= 300


@pytest.mark.parametrize("ngrams", NGRAMS)
@pytest.mark.parametrize("bitsize", BITSIZES)
def test_local_counts_equal_vowpal_wabbit(texts, bitsize, ngrams, tmp_path):
    expected = vw_indices(texts, bitsize, ngrams, tmp_path)
    matrix = hashing.hash_texts(texts, bitsize, ngrams, sparse=True)
    for row, (text, want) in enumerate(zip(texts, expected)):
        lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
        got = dict(zip(matrix.indices[lo:hi].tolist(), matrix.data[lo:hi].tolist()))
        assert got == dict(want), f"text {row}: {text[:80]!r}"
    assert sum(sum(c.values()) for c in expected) > 10_000


def test_docs_example_is_what_vw_audits(tmp_path):
    (counts,) = vw_indices(["This is a good day"], 3, 2, tmp_path)
    assert [counts[i] for i in range(8)] == [1, 1, 2, 2, 0, 2, 0, 1]
