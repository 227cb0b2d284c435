"""Sample data for the notebooks, the offline stack and the benchmarks.

Studio's "Book Reviews from Amazon" sample cannot be downloaded any more, so the package
ships its own small frame of the same shape, and a generator for large synthetic corpora.

>>> from azml_nb import datasets
>>> reviews = datasets.book_reviews()
>>> list(reviews.columns)
['Col1', 'Col2']
>>> datasets.synthetic_reviews(3, seed=1).shape
(3, 2)
"""
from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import pandas as pd

__all__ = ["book_reviews", "synthetic_reviews"]


@functools.lru_cache(maxsize=1)
def _book_reviews() -> pd.DataFrame:
    with resources.files("azml_nb").joinpath("data/book_reviews.csv").open("rb") as f:
        return pd.read_csv(f, dtype={"Col1": "int64", "Col2": "str"}, keep_default_na=False)


def book_reviews() -> pd.DataFrame:
    """A few hundred short book reviews written for this project (a fresh copy each call).

    Shaped like Studio's "Book Reviews from Amazon" sample: ``Col1`` is the rating
    (int, 1-5) and ``Col2`` the review text (str). Some texts have digits and punctuation.

    >>> df = book_reviews()
    >>> sorted(df["Col1"].unique().tolist())
    [1, 2, 3, 4, 5]
    """
    return _book_reviews().copy()


# --- synthetic corpus --------------------------------------------------------------------

# the most frequent words, in rank order; rarer ranks get generated pseudo-words
_COMMON = (
    "the and a of to is it I this in was book that for with but not you as on my are have "
    "be story read so one all very an at more by like from reading just his her about what "
    "they characters great had out would there good some well time really if much can no "
    "will when who which author how than into only love first even also series could me "
    "new way life many after other written because most end page pages world never never "
    "then people little best enjoyed again novel too through those ending plot know found "
    "chapter chapters writing recommend character interesting any should while fun every "
    "part long better both still bought sequel kindle copy style history years family "
    "mystery fantasy romance thriller boring slow beautiful fast funny sad dark"
).split()
_SYLLABLES = ("ka ri to an el mo su ve lo da ne pi ra co li ma be ta ho gu fe ni zo "
              "qua str ph th ch sh ed er in on ar or us is").split()
_NUMBERS = ["1", "2", "3", "4", "5", "10", "20", "100", "2", "3", "5", "2015", "2016",
            "300", "1984", "50", "7", "12", "99"]
_SUFFIXES = np.array(["", ".", ",", "!", "?", ";", ":)", "..."], dtype=object)
_SUFFIX_P = np.array([0.80, 0.09, 0.07, 0.015, 0.01, 0.005, 0.005, 0.005])


@functools.lru_cache(maxsize=4)
def _vocabulary(size: int) -> np.ndarray:
    rng = np.random.default_rng(20160)
    words = list(dict.fromkeys(_COMMON))
    seen = set(words)
    # numbers sit at moderately common ranks, as in real reviews
    for i, number in enumerate(dict.fromkeys(_NUMBERS)):
        words.insert(40 + 9 * i, number)
        seen.add(number)
    while len(words) < size:
        n = int(rng.integers(2, 5))
        word = "".join(rng.choice(_SYLLABLES, n))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return np.array(words[:size], dtype=object)


def synthetic_reviews(n: int, seed: int = 0, *, vocabulary: int = 20_000,
                      zipf: float = 1.07, mean_words: float = 45.0) -> pd.DataFrame:
    """Generate *n* review-like texts, reproducibly, fast (about a second per 100,000 rows).

    Words are drawn from a vocabulary of *vocabulary* words with Zipf-distributed
    frequencies (rank ``r`` has probability proportional to ``r ** -zipf``): common English
    review words first, some numbers ("5", "2016", ...), then generated pseudo-words.
    Lengths are log-normal with mean about *mean_words* words (from 1 up to a few hundred);
    about one word in five carries punctuation, and each text starts with a capital.

    Parameters
    ----------
    n : int
        Number of rows.
    seed : int, default 0
        Same seed, same frame.

    Returns
    -------
    pandas.DataFrame
        ``Col1`` rating (int64, 1-5) and ``Col2`` text (str), index 0..n-1.

    Examples
    --------
    >>> df = synthetic_reviews(1000, seed=7)
    >>> df.equals(synthetic_reviews(1000, seed=7))
    True
    >>> bool(df["Col1"].between(1, 5).all())
    True
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    rng = np.random.default_rng(seed)
    vocab = _vocabulary(int(vocabulary))
    ranks = np.arange(1, len(vocab) + 1, dtype=np.float64)
    cdf = np.cumsum(ranks ** -float(zipf))
    cdf /= cdf[-1]

    sigma = 0.8
    mu = np.log(mean_words) - sigma ** 2 / 2
    lengths = np.clip(np.rint(rng.lognormal(mu, sigma, n)), 1, 600).astype(np.int64)
    total = int(lengths.sum())
    ids = np.minimum(np.searchsorted(cdf, rng.random(total)), len(vocab) - 1)
    words = vocab[ids]
    suffix = _SUFFIXES[np.searchsorted(np.cumsum(_SUFFIX_P), rng.random(total) * 0.999999)]
    tokens = (words + suffix).tolist()
    starts = np.concatenate(([0], np.cumsum(lengths)))[:-1]
    for s in starts.tolist():
        tokens[s] = tokens[s][:1].upper() + tokens[s][1:]
    texts = []
    bounds = np.concatenate(([0], np.cumsum(lengths))).tolist()
    for a, b in zip(bounds[:-1], bounds[1:]):
        texts.append(" ".join(tokens[a:b]))
    ratings = rng.choice(np.arange(1, 6), size=n, p=[0.08, 0.07, 0.12, 0.23, 0.50])
    return pd.DataFrame({"Col1": ratings.astype(np.int64),
                         "Col2": pd.array(texts, dtype="str")})
