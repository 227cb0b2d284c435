"""The vectorised reader behind :func:`azml_nb.payload.from_response` and ``from_payload``.

A large classic body is mostly its ``Values`` arrays: millions of short JSON strings (or
numbers) in rows. Parsing them into Python row lists and then into columns is what makes the
plain reader slow (and Python's garbage collector with it). This reader never builds the
rows. It works on the raw bytes with numpy:

1. :class:`_Scanner` copies the body into a padded uint8 buffer and finds every unescaped
   quote, which gives the span of each JSON string. Null tokens outside strings are rewritten
   in that copy as ``"\0\0"`` (same length), so a table of strings and nulls looks like a
   table of strings; their offsets are kept to mark them missing later.
2. :func:`scan` finds each ``"Values": [[...], ...]`` array and its :class:`Spans` (the
   byte offsets of every value, by column and row). The usual case, every value a string
   written compactly (``","`` between values, ``"],["`` between rows), comes straight from
   the quote offsets; otherwise the brackets and commas outside strings, with their nesting
   depth, give the grid (numbers, booleans, nulls). Each array is replaced by a short marker
   string, and the small rest of the body (names, types, ``GlobalParameters``) is parsed by
   :func:`azml_nb.payload.loads`.
3. :func:`read_spans` reads each column at once: the number texts are joined with commas
   and parsed by one ``loads`` call; booleans and ISO 8601 datetimes of one fixed layout
   are read from byte grids; strings are decoded once and split (escaped strings one by one
   with ``loads``); the column builders of :mod:`azml_nb.payload` then type them as the
   plain reader does.

When this reader meets anything it is not sure about, it declines (:func:`scan` returns
None, or :exc:`NoFastPath` is raised) and ``azml_nb.payload`` reads the whole body with the
plain reader, which also words every error. That happens for bodies under 32 KiB
(``payload._FAST_MIN_BYTES``), bodies without ``"Values"``, an odd number of quotes,
whitespace between values or rows (pretty-printed JSON), ragged rows, nested arrays or
objects in cells, an array closed by ``}``, a ``"Values"`` array anywhere but a table (a
record's cell, ``GlobalParameters``), a width that does not match ``ColumnNames``, invalid
UTF-8, and any value that does not parse cleanly as its ``ColumnType`` (stray characters in
a number, integers beyond int64 or Int32, Single overflow, booleans other than true, false
in any case, 1 or 0). So both readers give the same frame or the same error;
``tests/test_payload_properties.py`` checks that on generated and mutated bodies.

``azml_nb.payload`` imports this module; the helpers this module needs from it are imported
inside the functions that use them.
"""
from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pandas as pd

from .errors import PayloadError


class NoFastPath(Exception):
    """The vectorised reader declines; the plain reader (which names errors) takes over."""


_PAD = 64
_DEPTH = np.zeros(256, dtype=np.int8)
_DEPTH[[ord("["), ord("{")]] = 1
_DEPTH[[ord("]"), ord("}")]] = -1
_WS = (b" ", b"\n", b"\r", b"\t")


class Spans:
    """Where the values of one classic ``Values`` table lie in the raw body.

    ``starts``/``ends`` are (columns, rows) byte offsets of each value's JSON text (a
    string value includes its quotes); ``is_str`` says which values are JSON strings or
    null (None: all of them); ``is_null`` which are null (None: none).
    """

    __slots__ = ("data", "buf", "starts", "ends", "is_str", "is_null", "backslashes")

    def __init__(self, data: bytes, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                 is_str: np.ndarray | None, is_null: np.ndarray | None, backslashes: np.ndarray):
        self.data, self.buf, self.starts, self.ends = data, buf, starts, ends
        self.is_str, self.is_null, self.backslashes = is_str, is_null, backslashes

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)"""
        return self.starts.shape[1], self.starts.shape[0]


def _odd_backslashes_before(data: bytes, pos: int) -> bool:
    run = 0
    while pos - run - 1 >= 0 and data[pos - run - 1] == 92:
        run += 1
    return run % 2 == 1


def _skip_ws(data: bytes, j: int) -> int:
    while data[j:j + 1] in _WS and j < len(data):
        j += 1
    return j


class _Scanner:
    """Lazily computed facts about one raw body, shared by its tables."""

    def __init__(self, data: bytes):
        self.data = data
        self.buf = np.empty(len(data) + _PAD, dtype=np.uint8)   # writable, padded for windows
        self.buf[:len(data)] = np.frombuffer(data, dtype=np.uint8)
        self.buf[len(data):] = 32
        body = self.buf[:len(data)]
        quotes = np.flatnonzero(body == 34)
        if len(data) < 2**31 - _PAD:   # half the memory traffic in what follows
            quotes = quotes.astype(np.int32)
        self.backslashes = np.flatnonzero(body == 92) if b"\\" in data else np.zeros(0, dtype=np.intp)
        if len(self.backslashes):
            maybe = quotes[quotes > 0]
            maybe = maybe[body[maybe - 1] == 92]
            escaped = [p for p in maybe.tolist() if _odd_backslashes_before(data, p)]
            if escaped:
                quotes = np.setdiff1d(quotes, np.array(escaped, dtype=quotes.dtype), assume_unique=True)
        self.null_at = np.zeros(0, dtype=quotes.dtype)   # offsets of the null tokens outside strings
        if len(quotes) % 2 == 0 and b"null" in data:
            # null -> "\0\0" (same length), so that a table of strings and nulls is read by the
            # all-strings path; the data bytes stay as they are
            hit = np.flatnonzero(body == 110).astype(quotes.dtype)   # n
            hit = hit[(self.buf[hit + 1] == 117) & (self.buf[hit + 2] == 108) & (self.buf[hit + 3] == 108)]
            where = np.searchsorted(quotes, hit)
            outside = (where & 1) == 0
            hit, where = hit[outside], where[outside]
            if len(hit):
                self.buf[hit], self.buf[hit + 1], self.buf[hit + 2], self.buf[hit + 3] = 34, 0, 0, 34
                quotes = np.insert(quotes, np.repeat(where, 2), np.column_stack([hit, hit + 3]).ravel())
                self.null_at = hit
        self.quotes = quotes
        self.opens, self.closes = quotes[0::2], quotes[1::2]
        self.precise = bool(len(self.backslashes))   # drop brackets and commas inside strings
        self._string_gaps: np.ndarray | None = None
        self._tokens: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def string_gaps_ok(self) -> np.ndarray:
        """For each pair of consecutive strings: 1 if only ``,`` lies between them, 2 if ``],[``."""
        if self._string_gaps is None:
            buf, o, c = self.buf, self.opens, self.closes
            gap = o[1:] - c[:-1]
            after = c[:-1] + 1
            comma = (gap == 2) & (buf[after] == 44)
            row = (gap == 4) & (buf[after] == 93) & (buf[after + 1] == 44) & (buf[after + 2] == 91)
            self._string_gaps = comma.view(np.uint8) + 2 * row.view(np.uint8)
        return self._string_gaps

    def tokens(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions, bytes and depths of the brackets and commas outside strings."""
        if self._tokens is None:
            body = self.buf[:len(self.data)]
            folded = body & 0xDF
            tokens = np.flatnonzero((body == 44) | (folded == 91) | (folded == 93))   # , [ ] { }
            del folded
            if self.precise:
                tokens = tokens[(np.searchsorted(self.quotes, tokens) & 1) == 0]
            # else (no escapes: every quote delimits a string) a bracket or comma inside a
            # string splits it into pieces that fail the quote count in _token_table
            chars = body[tokens]
            self._tokens = (tokens, chars, np.cumsum(_DEPTH[chars], dtype=np.int32))
        return self._tokens

    def null_mask(self, starts: np.ndarray) -> np.ndarray | None:
        """(columns, rows) mask of the values that are null tokens, from their (rows, columns)
        *starts*; None when there are none. Every such token is a whole value (the callers
        have checked that each quote is the first or last byte of a value)."""
        lo, hi = np.searchsorted(self.null_at, (starts[0, 0], starts[-1, -1] + 1))
        if lo == hi:
            return None
        k = np.searchsorted(starts.ravel(), self.null_at[lo:hi])
        mask = np.zeros(starts.shape[::-1], dtype=bool)
        mask[k % starts.shape[1], k // starts.shape[1]] = True
        return mask

    def table(self, start: int) -> tuple[Spans, int] | None:
        """The spans of the ``[[...], ...]`` array opening at *start*, and the offset just after it."""
        found = self._all_strings_table(start)
        return found if found is not None else self._token_table(start)

    def _all_strings_table(self, start: int) -> tuple[Spans, int] | None:
        """Fast case: every value a JSON string, written compactly (what services send)."""
        data, o, c = self.data, self.opens, self.closes
        if data[start:start + 3] != b'[["':
            return None
        i0 = int(np.searchsorted(o, start + 2))
        if i0 >= len(o) or o[i0] != start + 2:
            return None
        gaps = self.string_gaps_ok()
        stop = np.flatnonzero(gaps[i0:] == 0)
        i1 = i0 + (int(stop[0]) if len(stop) else len(gaps) - i0)   # last string of the array
        end = int(c[i1]) + 1
        if data[end:end + 2] != b"]]":
            return None
        breaks = np.flatnonzero(gaps[i0:i1] == 2)
        n = i1 - i0 + 1
        width = int(breaks[0]) + 1 if len(breaks) else n
        nrows = len(breaks) + 1
        if nrows * width != n or (len(breaks) and not np.array_equal(breaks, np.arange(1, nrows) * width - 1)):
            return None   # ragged: the plain reader names the row
        starts = o[i0:i1 + 1].reshape(nrows, width)
        ends = c[i0:i1 + 1].reshape(nrows, width).T + 1
        return Spans(data, self.buf, starts.T.copy(), ends, None, self.null_mask(starts), self.backslashes), end + 2

    def _token_table(self, start: int) -> tuple[Spans, int] | None:
        """General case: strings, numbers, booleans and null, compact JSON."""
        found = self._token_table_once(start)
        if found is None and not self.precise:   # maybe commas or brackets inside strings: look again
            self.precise, self._tokens = True, None
            found = self._token_table_once(start)
        return found

    def _token_table_once(self, start: int) -> tuple[Spans, int] | None:
        data, buf = self.data, self.buf
        tokens, chars, depth = self.tokens()
        k0 = int(np.searchsorted(tokens, start))
        if k0 >= len(tokens) or tokens[k0] != start:
            return None
        base = int(depth[k0])
        after = np.flatnonzero(depth[k0 + 1:] < base)
        if not len(after):
            return None
        k1 = k0 + 1 + int(after[0])
        if chars[k1] != 93:   # closed by "}": not JSON, the plain reader says so
            return None
        tok, ch, dep = tokens[k0 + 1:k1], chars[k0 + 1:k1], depth[k0 + 1:k1]
        first, last = int(tokens[k0]), int(tokens[k1])
        if not len(tok):
            if data[first + 1:last].strip():
                return None
            empty = np.zeros((0, 0), dtype=np.intp)
            return Spans(data, buf, empty, empty, None, None, self.backslashes), last + 1
        if (dep > base + 1).any():
            return None   # nested values or objects in cells: the plain reader explains
        between_rows = (ch == 44) & (dep == base)
        row_tok, row_ch = tok[~between_rows], ch[~between_rows]
        nrows = int((row_ch == 91).sum())
        if nrows == 0 or len(row_ch) % nrows:
            return None
        width = len(row_ch) // nrows
        grid_ch = row_ch.reshape(nrows, width)
        if not ((grid_ch[:, 0] == 91).all() and (grid_ch[:, -1] == 93).all() and (grid_ch[:, 1:-1] == 44).all()):
            return None   # ragged rows: the plain reader names the row
        grid = row_tok.reshape(nrows, width)
        seps = tok[between_rows]
        if grid[0, 0] != first + 1 or grid[-1, -1] != last - 1 or len(seps) != nrows - 1 \
                or not (np.array_equal(seps, grid[:-1, -1] + 1) and np.array_equal(grid[1:, 0], seps + 1)):
            return None   # whitespace between rows (pretty-printed): the plain reader
        if width == 2 and (grid[:, 1] == grid[:, 0] + 1).any():   # rows of no values: "[]"
            if not (grid[:, 1] == grid[:, 0] + 1).all():
                return None
            empty = np.zeros((0, nrows), dtype=np.intp)
            return Spans(data, buf, empty, empty, None, None, self.backslashes), last + 1
        by_row = grid[:, :-1] + 1
        starts, ends = by_row.T, grid[:, 1:].T.copy()
        is_str = (buf[starts] == 34) & (buf[ends - 1] == 34) & (ends - starts >= 2)
        if len(self.backslashes) and (buf[ends[is_str] - 2] == 92).any():
            return None   # a value ending in an escaped quote is not a whole string
        # every quote of the array must be the first or last byte of a whole-string value
        n_quotes = int(np.searchsorted(self.opens, last) - np.searchsorted(self.opens, first)) * 2
        if n_quotes != 2 * int(is_str.sum()):
            return None
        return Spans(data, buf, starts, ends, is_str, self.null_mask(by_row), self.backslashes), last + 1


def scan(data: bytes) -> tuple[bytes, dict[str, Spans]] | None:
    """Find every classic ``Values`` array in *data* with numpy, without building rows.

    Returns the body with each such array replaced by a marker string (small, parsed the
    ordinary way) and the spans behind each marker; None when the body is small or has a
    shape this reader does not handle (the plain reader then does all the work). The
    caller leaves small bodies to the plain reader.
    """
    pos = data.find(b'"Values"')
    if pos < 0:
        return None
    scanner = _Scanner(data)
    if len(scanner.quotes) % 2:
        return None
    opens, closes = scanner.opens, scanner.closes
    marker = f"\x00azml_nb:{id(data):x}:"
    spans: dict[str, Spans] = {}
    pieces: list[bytes] = []
    last = 0
    while pos >= 0:
        i = int(np.searchsorted(opens, pos))
        if i < len(opens) and opens[i] == pos and closes[i] == pos + 7:
            j = _skip_ws(data, pos + 8)
            if data[j:j + 1] == b":":
                j = _skip_ws(data, j + 1)
                if data[j:j + 1] == b"[" and j >= last:
                    found = scanner.table(j)
                    if found is None:
                        return None
                    key = f"{marker}{len(spans)}"
                    spans[key] = found[0]
                    pieces += [data[last:j], json.dumps(key).encode()]
                    last = found[1]
        pos = data.find(b'"Values"', max(pos + 8, last))
    if not spans:
        return None
    pieces.append(data[last:])
    return b"".join(pieces), spans


def _grid(sp: Spans, cs: np.ndarray, lens: np.ndarray, width: int) -> np.ndarray:
    """(n, width + 1) bytes starting at each *cs* (what follows a value is left in place)."""
    windows = np.lib.stride_tricks.sliding_window_view(sp.buf, width + 1)
    return windows[cs]


def _gather(sp: Spans, cs: np.ndarray, ce: np.ndarray, sep: bytes) -> bytes:
    """The bytes ``data[cs[i]:ce[i]]`` joined by *sep*, vectorised for short values."""
    n = len(cs)
    if not n:
        return b""
    lens = ce - cs
    width = int(lens.max())
    if width > 48 or n < 64:
        data = sp.data
        return sep.join([data[a:z] for a, z in zip(cs.tolist(), ce.tolist())])
    grid = _grid(sp, cs, lens, width)
    grid[np.arange(n), lens] = sep[0]
    keep = np.arange(width + 1) <= lens[:, None]
    return grid[keep][:-1].tobytes()


def _json_array(text: bytes) -> list:
    from .payload import loads

    try:
        return loads(b"[" + text + b"]")
    except PayloadError:
        raise NoFastPath from None


def _fast_bools(sp: Spans, cs: np.ndarray, ce: np.ndarray, literal: np.ndarray) -> np.ndarray:
    """Strings true/false (any case) or 1/0, and the JSON literals true/false/1/0, vectorised."""
    lens = ce - cs
    if not len(cs):
        return np.zeros(0, dtype=bool)
    raw = _grid(sp, cs, lens, 5)[:, :5]
    low = raw | 0x20
    true = ((lens == 4) & (low[:, 0] == 116) & (low[:, 1] == 114) & (low[:, 2] == 117) & (low[:, 3] == 101)) \
        | ((lens == 1) & (raw[:, 0] == 49))
    false = ((lens == 5) & (low[:, 0] == 102) & (low[:, 1] == 97) & (low[:, 2] == 108) & (low[:, 3] == 115)
             & (low[:, 4] == 101)) | ((lens == 1) & (raw[:, 0] == 48))
    if not (true | false).all():
        raise NoFastPath
    if literal.any() and (raw[literal] != low[literal])[:, :4].any():   # JSON spells true and false lower case
        raise NoFastPath
    return true


_ISO_LAYOUT = "dddd-dd-ddTdd:dd:dd.ddddddddd"
_ISO_UNITS = {10: "D", 16: "m", 19: "s", 23: "ms", 26: "us", 29: "ns"}


def _fast_datetimes(sp: Spans, cs: np.ndarray, ce: np.ndarray, miss: np.ndarray) -> Any:
    """ISO 8601 text of one layout, no offsets (``2024-05-01T10:00:00[.fff]``): numpy parses
    it from the bytes. Returns None for anything else (pandas then reads the text)."""
    lens = ce - cs
    keep = ~miss
    if not keep.any():
        return None
    width = int(lens[keep][0])
    if width not in _ISO_UNITS or not (lens[keep] == width).all():
        return None
    grid = np.ascontiguousarray(_grid(sp, cs[keep], lens[keep], width)[:, :width])
    for k, mark in enumerate(_ISO_LAYOUT[:width]):
        column = grid[:, k]
        ok = ((column >= 48) & (column <= 57)) if mark == "d" else (column == ord(mark))
        if not ok.all():
            return None
    unit = _ISO_UNITS[width]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            parsed = grid.view(f"S{width}").ravel().astype(f"datetime64[{unit}]")
    except (ValueError, Warning):
        return None
    unit = "ns" if unit == "ns" else "us"   # as pandas reads ISO text
    out = np.full(len(cs), np.datetime64("NaT"), dtype=f"datetime64[{unit}]")
    out[keep] = parsed
    return out


def _fast_column(sp: Spans, c: int, ctype: str | None, *, empty_is_missing: bool) -> Any:
    """Read column *c* of *sp* as *ctype* (None: infer from the JSON); raises NoFastPath."""
    from .payload import (_STR_DTYPE, _bools_column, _floats_column, _ints_column, _parse_datetimes,
                          _single_overflow, _strings_column, loads)

    s, e = sp.starts[c], sp.ends[c]
    n = len(s)
    is_null = sp.is_null[c] if sp.is_null is not None else np.zeros(n, dtype=bool)
    if sp.is_str is None:   # strings and nulls only
        is_str, literal = ~is_null, np.zeros(n, dtype=bool)
    else:
        is_str, literal = sp.is_str[c] & ~is_null, ~sp.is_str[c]
    if literal.any():
        cs, ce = np.where(is_str, s + 1, s), np.where(is_str, e - 1, e)
    else:
        cs, ce = s + 1, e - 1
    empty = is_str & (ce == cs)
    escaped = None
    if len(sp.backslashes):
        escaped = np.searchsorted(sp.backslashes, ce) > np.searchsorted(sp.backslashes, cs)

    if ctype is None:   # request values without a schema: the JSON kinds decide
        if is_str.any():
            if literal.any():
                raise NoFastPath
            ctype = "String"
        elif literal.any():
            text = _gather(sp, cs[literal], ce[literal], b",")
            if not text.translate(None, b"0123456789-+.eE,"):
                ctype = "Double" if any(ch in text for ch in b".eE") else "Int64"
            else:
                ctype = "Boolean"
        else:
            ctype = "String"

    if ctype in ("Int32", "Int64", "Double", "Single", "Numeric", "Boolean"):
        miss = is_null | empty
        keep = ~miss
        if escaped is not None and escaped[keep].any():
            raise NoFastPath
        if ctype == "Boolean":
            return _bools_column(_fast_bools(sp, cs[keep], ce[keep], literal[keep]), miss)
        everything = keep.all()
        text = _gather(sp, cs if everything else cs[keep], ce if everything else ce[keep], b",")
        if text.translate(None, b"0123456789-," if ctype in ("Int32", "Int64") else b"0123456789-+.eE,"):
            raise NoFastPath   # anything but digits, signs, points and exponents
        numbers = _json_array(text)
        if len(numbers) != int(keep.sum()):   # a comma inside a value
            raise NoFastPath
        if ctype in ("Int32", "Int64"):
            try:
                ints = np.array(numbers) if numbers else np.zeros(0, np.int64)
            except OverflowError:
                raise NoFastPath from None
            if ints.dtype != np.int64:   # a parser's float for a huge integer, or beyond int64
                raise NoFastPath
            if ctype == "Int32" and len(ints) and (ints.min() < -2**31 or ints.max() >= 2**31):
                raise NoFastPath
            return _ints_column(ints, miss, ctype)
        floats = np.array(numbers, dtype=np.float64)
        if ctype == "Single" and _single_overflow(floats).any():
            raise NoFastPath
        return _floats_column(floats, miss, ctype)

    # String and DateTime: JSON strings (or null) only
    if literal[~is_null].any():
        raise NoFastPath
    miss = is_null | empty if (empty_is_missing or ctype == "DateTime") else is_null
    keep = ~miss
    if ctype == "DateTime" and (escaped is None or not escaped[keep].any()):
        parsed = _fast_datetimes(sp, cs, ce, miss)
        if parsed is not None:
            return parsed
    n_keep = int(keep.sum())
    everything = n_keep == n
    try:
        texts = _gather(sp, cs if everything else cs[keep], ce if everything else ce[keep],
                        b"\n").decode("utf-8").split("\n") if n_keep else []
    except UnicodeDecodeError:
        raise NoFastPath from None
    if len(texts) != n_keep:
        raise NoFastPath
    if escaped is not None and escaped[keep].any():
        data = sp.data
        rows = np.flatnonzero(keep)
        for k in np.flatnonzero(escaped[keep]).tolist():
            row = int(rows[k])
            try:
                texts[k] = loads(data[int(cs[row]) - 1:int(ce[row]) + 1])
            except PayloadError:
                raise NoFastPath from None
    if everything and ctype == "String" and _STR_DTYPE is not object:
        return pd.array(texts, dtype=_STR_DTYPE)
    arr = np.empty(n, dtype=object)
    arr[keep] = texts
    if ctype == "DateTime":
        try:
            return _parse_datetimes(arr, miss, "", "")
        except PayloadError:
            raise NoFastPath from None
    return _strings_column(arr)


def read_spans(sp: Spans, names: list[str], ctypes: list[str | None], label: str,
                empty_is_missing: bool) -> pd.DataFrame:
    """The frame of one table from its spans; raises NoFastPath."""
    from .payload import _frame, read_values

    nrows, width = sp.shape
    if nrows == 0:
        return read_values(names, [t or "String" for t in ctypes], [], label=label)
    if width != len(names):
        raise NoFastPath
    data = {name: _fast_column(sp, i, ctypes[i], empty_is_missing=empty_is_missing)
            for i, name in enumerate(names)}
    return _frame(data, names, nrows)
