"""Feature Hashing, exactly as the Studio (classic) module computes it, vectorised.

The Studio "Feature Hashing" module is Vowpal Wabbit's text hashing (see ``docs/hashing.md``
for how this was checked against VW itself). For one text:

1. split on whitespace (Python's :meth:`str.split` with no argument), keep case;
2. hash every token: MurmurHash3_x86_32 of its UTF-8 bytes with seed 0, except that a
   token made only of ASCII digits hashes to its integer value;
3. for N-grams up to ``ngrams`` words, fold the token hashes left to right as
   ``h = h * 27942141 + next`` in unsigned 64-bit arithmetic;
4. the bucket of a feature is ``h & (2**bitsize - 1)``; the result counts the features
   (words and n-grams) in each bucket.

Because only the low ``bitsize <= 31`` bits are kept and ``(a * c + b) mod 2**k`` depends only
on ``a mod 2**k`` and ``b mod 2**k``, all the arithmetic runs in wrapping ``uint32``
numpy arrays: token boundaries come from the UTF-8 bytes of all texts at once,
MurmurHash3 runs vectorised over every token (no Python object per token; :mod:`mmh3`
is the reference the tests compare with), n-grams are whole-array multiply-adds, and the
counts are a CSR matrix (``sparse=True``) or its dense array.

>>> hash_text("This is a good day", bitsize=3, ngrams=2).tolist()
[1, 1, 2, 2, 0, 2, 0, 1]
"""
from __future__ import annotations

import functools
import itertools
import logging
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import mmh3
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import PayloadError, SchemaError

__all__ = [
    "hash_text",
    "hash_texts",
    "feature_hashing",
    "feature_names",
    "token_hash",
    "SparseFeatures",
    "MAX_DENSE_BYTES",
    "BITSIZE_RANGE",
    "NGRAMS_RANGE",
]

log = logging.getLogger(__name__)

#: Vowpal Wabbit's ``quadratic_constant``, the multiplier that folds n-gram hashes.
NGRAM_MULTIPLIER = 27942141
#: Allowed ``bitsize`` values (inclusive), as in Studio.
BITSIZE_RANGE = (1, 31)
#: Allowed ``ngrams`` values (inclusive), as in Studio. 0 means the same as 1: single words.
NGRAMS_RANGE = (0, 10)
#: A dense result larger than this many bytes is refused; use ``sparse=True`` instead.
MAX_DENSE_BYTES = 1 << 30
#: dtype of the counts (Studio's output columns are Int32).
COUNT_DTYPE = np.int32

_U32 = 0xFFFFFFFF


# --- parameters --------------------------------------------------------------------------

def _check_params(bitsize: Any, ngrams: Any) -> tuple[int, int]:
    """Validate like Studio: bitsize 1..31, ngrams 0..10 (integers, not bools)."""
    for name, value, (low, high) in (("bitsize", bitsize, BITSIZE_RANGE),
                                     ("ngrams", ngrams, NGRAMS_RANGE)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
        if not low <= int(value) <= high:
            raise ValueError(f"{name} must be in {low}..{high}, got {int(value)}")
    return int(bitsize), max(int(ngrams), 1)


# --- token hashes ------------------------------------------------------------------------

def token_hash(token: str) -> int:
    """Return the 32-bit hash of one token, the way Vowpal Wabbit hashes a feature name.

    A token of ASCII digits only hashes to its integer value (modulo 2**32, which is all a
    bucket of at most 31 bits can see); any other token to MurmurHash3_x86_32 of its UTF-8
    bytes with seed 0, as an unsigned integer.

    >>> token_hash("2019"), token_hash("good")
    (2019, 115441729)
    """
    if token.isascii() and token.isdigit():
        # 10**32 is a multiple of 2**32, so only the last 32 digits matter modulo 2**32;
        # this also keeps int() clear of Python's limit on very long digit strings.
        return int(token[-32:]) & _U32
    return mmh3.hash(token.encode("utf-8", "surrogatepass"), 0, signed=False)


def _hash_unique(tokens: Sequence[str]) -> np.ndarray:
    return np.fromiter(map(token_hash, tokens), dtype=np.uint32, count=len(tokens))


def _tokenize_python(texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Reference tokenizer: (token hash per token, token count per text), via str.split.

    Kept as the plain statement of what :func:`_tokenize` computes; the tests compare them.
    """
    split = [t.split() if t is not None else () for t in texts]
    lengths = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
    flat = list(itertools.chain.from_iterable(split))
    if not flat:
        return np.zeros(0, np.uint32), lengths
    codes, uniques = pd.factorize(np.array(flat, dtype=object))
    return _hash_unique(uniques)[codes], lengths


# Every character for which str.isspace() is true, i.e. what str.split() splits on.
# The ASCII ones are bytes in UTF-8; the others are mapped to " " before encoding.
_ASCII_SPACES = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "
_OTHER_SPACES = ("\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                 "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_OTHER_SPACES_RE = re.compile(f"[{_OTHER_SPACES}]")
_TO_SPACE = str.maketrans(dict.fromkeys(_OTHER_SPACES, " "))
_IS_SPACE_BYTE = np.zeros(256, dtype=bool)
_IS_SPACE_BYTE[[ord(c) for c in _ASCII_SPACES]] = True
_IS_DIGIT_BYTE = np.zeros(256, dtype=bool)
_IS_DIGIT_BYTE[ord("0"):ord("9") + 1] = True


# tokens longer than this many bytes are hashed one by one (see _tokenize)
_LONG_TOKEN = 64


def _bytes_token_hash(token: bytes) -> int:
    """:func:`token_hash` of a token given as UTF-8 bytes."""
    if token.isdigit():                      # bytes.isdigit() is ASCII digits only
        return int(token[-32:]) & _U32
    return mmh3.hash(token, 0, signed=False)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _murmur3_32(words: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """MurmurHash3_x86_32, seed 0, of many byte strings at once.

    *words* is a uint32 view of the (padded) buffer at every byte offset, so ``words[p]`` is
    the little-endian 4-byte word starting at byte ``p``; the strings are
    ``buffer[starts[i]:starts[i] + lengths[i]]``.
    """
    c1, c2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)
    h = np.zeros(len(starts), dtype=np.uint32)
    nblocks = lengths >> 2
    active = np.flatnonzero(nblocks)
    j = 0
    while len(active):
        k = words[starts[active] + 4 * j]
        k *= c1
        k = _rotl(k, 15)
        k *= c2
        hj = h[active] ^ k
        hj = _rotl(hj, 13)
        h[active] = hj * np.uint32(5) + np.uint32(0xE6546B64)
        j += 1
        active = active[nblocks[active] > j]
    rest = (lengths & 3).astype(np.uint32)
    tail = np.flatnonzero(rest)
    if len(tail):
        k = words[starts[tail] + 4 * nblocks[tail]]
        k &= (np.uint32(1) << (np.uint32(8) * rest[tail])) - np.uint32(1)
        k *= c1
        k = _rotl(k, 15)
        k *= c2
        h[tail] ^= k
    h ^= lengths.astype(np.uint32)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def _tokenize(texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Return (token hash per token, token count per text) for a sequence of texts or None.

    Vectorised over the UTF-8 bytes of all the texts: no Python object per token. Gives
    exactly what :func:`_tokenize_python` gives (``str.split`` then :func:`token_hash`).
    """
    n = len(texts)
    if n == 0:
        return np.zeros(0, np.uint32), np.zeros(0, np.int64)
    texts = ["" if t is None else t for t in texts]
    joined = "\n".join(texts)                      # "\n" keeps tokens of two texts apart
    if not joined.isascii() and _OTHER_SPACES_RE.search(joined):
        texts = [t.translate(_TO_SPACE) for t in texts]
        joined = "\n".join(texts)
    data = joined.encode("utf-8", "surrogatepass")
    if len(data) == len(joined):                  # ASCII: a character is a byte
        text_bytes = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    else:
        text_bytes = np.fromiter((len(t.encode("utf-8", "surrogatepass")) for t in texts),
                                 dtype=np.int64, count=n)
    row_starts = np.zeros(n, dtype=np.int64)
    np.cumsum(text_bytes[:-1] + 1, out=row_starts[1:])

    buf = np.frombuffer(data, dtype=np.uint8)
    in_token = np.empty(len(buf) + 2, dtype=np.int8)  # 0-padded on both sides
    in_token[0] = in_token[-1] = 0
    np.logical_not(_IS_SPACE_BYTE[buf], out=in_token[1:-1].view(bool))
    edges = np.diff(in_token)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    del in_token, edges
    lengths = ends - starts
    first_token = np.searchsorted(starts, row_starts)      # index of each text's first token
    tokens_per_text = np.diff(first_token, append=len(starts)).astype(np.int64)

    padded = data + b"\0\0\0\0"
    words = np.ndarray(shape=(len(data) + 1,), dtype="<u4", buffer=padded, strides=(1,))
    long = np.flatnonzero(lengths > _LONG_TOKEN)
    if len(long):
        # the vectorised loops take one numpy pass per 4 bytes (per digit): rare very long
        # tokens go through the plain per-token hash instead
        short = np.flatnonzero(lengths <= _LONG_TOKEN)
        hashes = np.empty(len(starts), dtype=np.uint32)
        hashes[short] = _murmur3_32(words, starts[short], lengths[short])
        hashes[long] = [_bytes_token_hash(data[a:b])
                        for a, b in zip(starts[long].tolist(), ends[long].tolist())]
    else:
        hashes = _murmur3_32(words, starts, lengths)

    # tokens of ASCII digits only hash to their value modulo 2**32 (Horner's rule, wrapping)
    digit = _IS_DIGIT_BYTE[buf]
    cand = np.flatnonzero(digit[starts] & (lengths <= _LONG_TOKEN))
    if len(cand):
        value = np.zeros(len(cand), dtype=np.uint32)
        alive = np.arange(len(cand))              # candidates still all digits so far
        j = 0
        while len(alive):
            done = lengths[cand[alive]] <= j
            if done.any():
                hashes[cand[alive[done]]] = value[alive[done]]
                alive = alive[~done]
            pos = starts[cand[alive]] + j
            is_digit = digit[pos]
            alive, pos = alive[is_digit], pos[is_digit]
            value[alive] = value[alive] * np.uint32(10) + (buf[pos] - 48).astype(np.uint32)
            j += 1
    return hashes, tokens_per_text


def _counts(hashes: np.ndarray, lengths: np.ndarray, bitsize: int, ngrams: int, *,
            canonical: bool = True) -> sp.csr_matrix:
    """CSR counts (int32) from the flat token hashes and the tokens per text.

    With ``canonical=False`` duplicate buckets of a row stay separate entries (fine for
    ``toarray()``, which adds them up, and it saves sorting each row).

    Features are laid out token by token: for token ``i`` its 1-gram, then the 2-gram
    starting at ``i``, ... up to ``ngrams``, skipping n-grams that run past the end of the
    text. That order is already grouped by text, so the CSR row pointers come from the
    lengths alone, and only the duplicate buckets within a row need summing.
    """
    n_rows, size = len(lengths), 1 << bitsize
    n_tokens = len(hashes)
    mask = np.uint32(size - 1)
    per_row = sum(np.maximum(lengths - (k - 1), 0) for k in range(1, ngrams + 1))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(per_row, out=indptr[1:])
    if ngrams == 1 or n_tokens < 2:
        buckets = hashes & mask
    else:
        table = np.empty((n_tokens, ngrams), dtype=np.uint32)    # k-gram hash at [i, k-1]
        valid = np.empty((n_tokens, ngrams), dtype=bool)
        table[:, 0] = hashes
        valid[:] = True
        ends = np.cumsum(lengths)                # one past each text's last token
        folded = hashes
        mult = np.uint32(NGRAM_MULTIPLIER)
        for k in range(2, ngrams + 1):
            if k <= n_tokens:
                folded = folded[:-1] * mult + hashes[k - 1:]    # wraps modulo 2**32, on purpose
                table[: n_tokens - k + 1, k - 1] = folded
            # a k-gram cannot start in the last k-1 tokens of its text
            for back in range(1, k):
                valid[ends[lengths >= back] - back, k - 1] = False
        buckets = table[valid]
        buckets &= mask
    if len(buckets) < 2**31:
        indices, indptr = buckets.view(np.int32), indptr.astype(np.int32)
    else:
        indices = buckets.astype(np.int64)
    matrix = sp.csr_matrix((np.ones(len(buckets), COUNT_DTYPE), indices, indptr),
                           shape=(n_rows, size))
    if canonical:
        matrix.sum_duplicates()     # else duplicates stay; toarray() adds them up anyway
    return matrix


def _check_dense_bound(n_rows: int, n_cols: int, max_bytes: int | None, *,
                       named: bool = True) -> None:
    """Refuse a dense result whose estimated size exceeds the bound.

    The estimate is 4 bytes per count plus, for a DataFrame (``named``), 128 bytes per
    column for its name and bookkeeping.
    """
    bound = MAX_DENSE_BYTES if max_bytes is None else max_bytes
    need = n_rows * n_cols * np.dtype(COUNT_DTYPE).itemsize + (n_cols * 128 if named else 0)
    if need > bound:
        raise MemoryError(
            f"a dense result of {n_rows} rows x {n_cols} columns would take "
            f"{need / 2**20:,.0f} MiB, over the {bound / 2**20:,.0f} MiB bound; "
            "pass sparse=True to get a scipy.sparse CSR matrix instead "
            "(or raise max_dense_bytes=)")


def hash_text(text: str | None, bitsize: int = 10, ngrams: int = 2) -> np.ndarray:
    """Hash one text into ``2**bitsize`` bucket counts, like Studio's Feature Hashing.

    Parameters
    ----------
    text : str or None
        The text; None (or NaN/NA) gives all zeros.
    bitsize : int, 1..31
        Number of bits of the hash kept; the result has ``2**bitsize`` counts.
    ngrams : int, 0..10
        Longest n-gram counted: 2 counts single words and pairs of neighbouring words.
        0 and 1 both mean single words only.

    Returns
    -------
    numpy.ndarray of int32, length ``2**bitsize``

    Examples
    --------
    >>> hash_text("This is a good day", bitsize=3, ngrams=2).tolist()
    [1, 1, 2, 2, 0, 2, 0, 1]
    >>> int(hash_text("This is a good day", bitsize=3, ngrams=2).sum())  # 5 words + 4 pairs
    9
    """
    return hash_texts([text], bitsize, ngrams)[0]


def hash_texts(texts: Iterable[Any], bitsize: int = 10, ngrams: int = 2, *,
               sparse: bool = False, stringify: bool = False,
               max_dense_bytes: int | None = None, name: Any = None):
    """Hash many texts: one row of ``2**bitsize`` counts per text.

    Parameters
    ----------
    texts : iterable of str (or a pandas Series)
        Missing values (None, NaN, NA) give all-zero rows.
    bitsize, ngrams : int
        As in :func:`hash_text`.
    sparse : bool, default False
        False: a dense ``numpy.ndarray`` (int32, shape ``(n, 2**bitsize)``), refused with
        :class:`MemoryError` above ``max_dense_bytes``. True: a ``scipy.sparse.csr_matrix``
        of int32 with sorted, summed indices.
    stringify : bool, default False
        Hash ``str(value)`` of non-string values instead of raising
        :class:`~azml_nb.errors.PayloadError`.
    max_dense_bytes : int, optional
        Bound on the dense result; default :data:`MAX_DENSE_BYTES` (1 GiB).
    name : optional
        Column name used in error messages.

    Examples
    --------
    >>> hash_texts(["a b", None, "b"], bitsize=2, ngrams=1).tolist()
    [[0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 1]]
    """
    bitsize, ngrams = _check_params(bitsize, ngrams)
    values = _clean_texts(texts, stringify=stringify, name=name)
    if not sparse:
        _check_dense_bound(len(values), 1 << bitsize, max_dense_bytes, named=False)
    hashes, lengths = _tokenize(values)
    log.debug("hashing %d texts, %d tokens, bitsize %d, ngrams %d", len(values), len(hashes),
              bitsize, ngrams)
    matrix = _counts(hashes, lengths, bitsize, ngrams, canonical=sparse)
    return matrix if sparse else matrix.toarray()


def _clean_texts(texts: Iterable[Any], *, stringify: bool, name: Any) -> list:
    """Return a list of str or None (missing); raise PayloadError on other values."""
    if isinstance(texts, pd.Series):
        index = texts.index
        if name is None:
            name = texts.name
        if isinstance(texts.dtype, pd.StringDtype):
            return texts.to_numpy(dtype=object, na_value=None).tolist()
        values = texts.to_numpy(dtype=object)
    else:
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of texts, not one str; use hash_text")
        values = np.asarray(list(texts), dtype=object)
        index = None
    if len(values) and pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values.tolist()
    missing = pd.isna(values)
    out = values.tolist()
    for i, value in enumerate(out):
        if missing[i]:
            out[i] = None
        elif type(value) is not str:
            if isinstance(value, str):
                out[i] = str.__str__(value)
            elif stringify:
                out[i] = str(value)
            else:
                label = i if index is None else index[i]
                label = label.item() if isinstance(label, np.generic) else label
                where = f"row {i}" if index is None else f"row {label!r} (position {i})"
                column = "" if name is None else f"column {name!r}, "
                raise PayloadError(
                    f"{column}{where}: expected text, got {type(value).__name__} {value!r}; "
                    "pass stringify=True to hash str(value)",
                    column=name, row=label)
    return out


# --- DataFrames --------------------------------------------------------------------------

def feature_names(column: Any, bitsize: int, taken: Iterable[Any] = ()) -> list[str]:
    """Names of the hashed columns of *column*: ``{column}_HashingFeature.{i}``.

    A name already in *taken* gets the first free suffix ``_2``, ``_3``, ... (the suffix is
    added to that one name only; the others keep their plain names).

    >>> feature_names("Col2", 2)
    ['Col2_HashingFeature.0', 'Col2_HashingFeature.1', 'Col2_HashingFeature.2', 'Col2_HashingFeature.3']
    >>> feature_names("Col2", 1, taken=["Col2_HashingFeature.1"])
    ['Col2_HashingFeature.0', 'Col2_HashingFeature.1_2']
    """
    names = [f"{column}_HashingFeature.{i}" for i in range(1 << bitsize)]
    taken = set(taken)
    if taken.isdisjoint(names):
        return names
    used = taken | set(names)
    for i, name in enumerate(names):
        if name in taken:
            k = 2
            while f"{name}_{k}" in used:
                k += 1
            names[i] = f"{name}_{k}"
            used.add(names[i])
    return names


def _all_feature_names(existing: Iterable[Any], selected: Sequence[Any],
                       bitsize: int) -> list[str]:
    taken = list(existing)
    names: list[str] = []
    for column in selected:
        block = feature_names(column, bitsize, taken)
        taken += block
        names += block
    return names


@dataclass(frozen=True)
class SparseFeatures:
    """The sparse result of :func:`feature_hashing`.

    Attributes
    ----------
    frame : pandas.DataFrame
        The input frame, unchanged (same columns, rows and index).
    matrix : scipy.sparse.csr_matrix
        int32 counts, one row per row of ``frame``, one column per name in ``columns``.
    sources : tuple
        The hashed text columns, in order.
    bitsize : int
    columns : list of str
        The hashed column names, in order (``{col}_HashingFeature.{i}`` for each source
        column in turn), as :func:`feature_names` picks them.
    """

    frame: pd.DataFrame
    matrix: sp.csr_matrix
    sources: tuple
    bitsize: int

    @functools.cached_property
    def columns(self) -> list[str]:
        """The hashed column names, in order (computed on first use: 2**bitsize each)."""
        return _all_feature_names(self.frame.columns, self.sources, self.bitsize)

    def to_frame(self, *, max_dense_bytes: int | None = None) -> pd.DataFrame:
        """The dense DataFrame ``feature_hashing(..., sparse=False)`` would have returned."""
        _check_dense_bound(*self.matrix.shape, max_dense_bytes)
        return _append(self.frame, self.matrix.toarray(), self.columns)

    def __repr__(self) -> str:
        return (f"SparseFeatures({len(self.frame)} rows, {self.matrix.shape[1]} hashed columns, "
                f"{self.matrix.nnz} non-zeros)")


def _append(df: pd.DataFrame, counts: np.ndarray, names: list) -> pd.DataFrame:
    hashed = pd.DataFrame(counts, columns=names, copy=False)
    out = pd.concat([df.reset_index(drop=True), hashed], axis=1)
    out.index = df.index
    return out


def feature_hashing(df: pd.DataFrame, columns: Any, bitsize: int = 10, ngrams: int = 2, *,
                    sparse: bool = False, stringify: bool = False,
                    max_dense_bytes: int | None = None):
    """Append Studio "Feature Hashing" count columns to a DataFrame.

    Parameters
    ----------
    df : pandas.DataFrame
    columns : str or list of str
        The text column(s) to hash. Each gets ``2**bitsize`` columns named
        ``{column}_HashingFeature.{i}``, appended after all the columns of *df* (which are
        kept, the text column too). A name already taken gets the first free suffix
        ``_2``, ``_3``, ... (see :func:`feature_names`).
    bitsize : int, 1..31, default 10
    ngrams : int, 0..10, default 2
        Longest n-gram counted; 0 and 1 both mean single words only.
    sparse : bool, default False
        False: a DataFrame with int32 count columns, refused with :class:`MemoryError` when
        the counts would exceed ``max_dense_bytes`` (default 1 GiB). True: a
        :class:`SparseFeatures` holding *df* and a ``scipy.sparse.csr_matrix`` of the counts.
    stringify : bool, default False
        Hash ``str(value)`` of non-string cells instead of raising
        :class:`~azml_nb.errors.PayloadError` naming the column and row.
    max_dense_bytes : int, optional

    Returns
    -------
    pandas.DataFrame or SparseFeatures
        Rows keep their order and index. Missing texts give all-zero rows.

    Examples
    --------
    >>> df = pd.DataFrame({"Col1": [4], "Col2": ["This is a good day"]})
    >>> out = feature_hashing(df, "Col2", bitsize=3, ngrams=2)
    >>> list(out.columns[:3])
    ['Col1', 'Col2', 'Col2_HashingFeature.0']
    >>> out.iloc[0, 2:].tolist()
    [1, 1, 2, 2, 0, 2, 0, 1]
    """
    bitsize, _ = _check_params(bitsize, ngrams)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    selected = [columns] if isinstance(columns, str) or not isinstance(columns, Iterable) \
        else list(columns)
    if not selected:
        raise SchemaError("columns is empty: name at least one text column to hash",
                          expected=["a text column"], given=[])
    missing = [c for c in selected if c not in df.columns]
    if missing:
        raise SchemaError(f"column(s) {missing!r} not in the frame; it has {list(df.columns)!r}",
                          expected=selected, given=list(df.columns), column=missing[0])
    if len(set(selected)) != len(selected):
        raise SchemaError(f"columns {selected!r} names a column twice", expected=selected,
                          given=selected)
    ambiguous = [c for c in selected if (df.columns == c).sum() > 1]
    if ambiguous:
        raise SchemaError(f"column {ambiguous[0]!r} appears more than once in the frame; "
                          "rename the copies first", given=list(df.columns), column=ambiguous[0])
    n_cols = len(selected) << bitsize
    if not sparse:
        _check_dense_bound(len(df), n_cols, max_dense_bytes)
    blocks = [hash_texts(df[column], bitsize, ngrams, sparse=sparse, stringify=stringify,
                         max_dense_bytes=max_dense_bytes, name=column)
              for column in selected]
    if sparse:
        matrix = blocks[0] if len(blocks) == 1 else sp.hstack(blocks, format="csr")
        return SparseFeatures(df, matrix, tuple(selected), bitsize)
    counts = blocks[0] if len(blocks) == 1 else np.hstack(blocks)
    return _append(df, counts, _all_feature_names(df.columns, selected, bitsize))
