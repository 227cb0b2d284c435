"""DataFrames to AzureML web-service payloads and back. Pure functions, no I/O.

Two wire formats, chosen with one ``format=`` word:

``"classic"``
    ``{"Inputs": {"input1": {"ColumnNames": [...], "Values": [[...], ...]}}, "GlobalParameters": {}}``;
    responses ``{"Results": {"output1": {"type": "table", "value": {"ColumnNames": [...],
    "ColumnTypes": [...], "Values": [[...]]}}}}``.
``"swagger"``
    row records: ``{"Inputs": {"input1": [{"Col1": 1, "Col2": "text"}]}, "GlobalParameters": {}}``;
    responses ``{"Results": {"output1": [{"Col1": "1"}]}}``.

Requests carry JSON numbers by default (``numbers_as_strings=True`` sends strings, as Studio's
own samples do); responses carry every value as a string and say each column's type in
``ColumnTypes`` (or in the service's swagger.json, passed as ``schema=``).

>>> import pandas as pd
>>> body = to_payload(pd.DataFrame({"Col1": [5], "Col2": ["This is a good day"]}))
>>> body["Inputs"]["input1"]
{'ColumnNames': ['Col1', 'Col2'], 'Values': [[5, 'This is a good day']]}
>>> from_payload(body).dtypes.astype(str).tolist()
['int64', 'str']
"""
from __future__ import annotations

import datetime as _dt
import decimal
import gc
import io
import json
import logging
import math
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from . import _fastread
from .errors import PayloadError

try:  # optional accelerator; the standard-library path gives the same bytes' meaning
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised when orjson is absent
    _orjson = None

__all__ = [
    "to_payload",
    "from_payload",
    "to_response",
    "from_response",
    "read_values",
    "column_types",
    "swagger_properties",
    "schema_types",
    "dumps",
    "loads",
    "COLUMN_TYPES",
]

log = logging.getLogger(__name__)

FORMATS = ("classic", "swagger")
#: the AzureML ColumnType names this module reads and writes
COLUMN_TYPES = ("Int32", "Int64", "Double", "Single", "Numeric", "Boolean", "String", "DateTime")
_CTYPE_BY_LOWER = {t.lower(): t for t in COLUMN_TYPES}
_STR_DTYPE: Any = "str" if int(pd.__version__.split(".")[0]) >= 3 else object
_NESTED = (dict, list, tuple, set, frozenset, bytes, bytearray, memoryview)
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


# --------------------------------------------------------------------------- strict JSON

def dumps(obj: Any) -> bytes:
    """Encode *obj* as compact UTF-8 JSON bytes, never writing ``NaN``/``Infinity`` tokens.

    numpy scalars and arrays, ``pandas.Timestamp``/``datetime`` (ISO 8601) and missing markers
    (``None``, ``NaN``, ``pd.NA``, ``pd.NaT``) are accepted; a non-finite float is written as
    ``null``. Keys must be strings. Long lists are encoded a slice at a time, so a body of
    a million rows needs little memory beyond its own bytes.

    >>> dumps({"a": [1, 2.5, float("nan"), "é"]})
    b'{"a":[1,2.5,null,"\\xc3\\xa9"]}'
    """
    if not _has_long_list(obj):
        return _dumps(obj)
    out = io.BytesIO()
    _dump_pieces(obj, out)
    return out.getvalue()


_SLICE = 16384   # rows encoded at a time by dumps


def _has_long_list(obj: Any, depth: int = 0) -> bool:
    if type(obj) is list:
        return len(obj) > _SLICE
    if type(obj) is dict and depth < 4:
        return any(_has_long_list(v, depth + 1) for v in obj.values())
    return False


def _dump_pieces(obj: Any, out: io.BytesIO) -> None:
    """Write *obj* to *out*, a slice of each long list at a time (what orjson keeps per call is
    a few times the text it returns, so a whole body at once would peak far above its size)."""
    if type(obj) is dict and all(type(k) is str for k in obj):
        out.write(b"{")
        for i, (key, value) in enumerate(obj.items()):
            out.write((b"," if i else b"") + _dumps(key) + b":")
            _dump_pieces(value, out)
        out.write(b"}")
    elif type(obj) is list and len(obj) > _SLICE:
        out.write(b"[")
        for start in range(0, len(obj), _SLICE):
            if start:
                out.write(b",")
            out.write(memoryview(_dumps(obj[start:start + _SLICE]))[1:-1])
        out.write(b"]")
    else:
        out.write(_dumps(obj))


def _dumps(obj: Any) -> bytes:
    if _orjson is not None:
        try:
            return _orjson.dumps(obj, default=_json_default, option=_orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:
            pass   # e.g. an integer beyond 64 bits: the standard library writes it, or explains
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                          default=_json_default)
    except ValueError:  # a non-finite float somewhere: write it as null, like orjson does
        text = json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                          default=_json_default)
    except TypeError as err:
        raise PayloadError(f"cannot encode as JSON: {err}") from err
    return text.encode("utf-8")


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode strict JSON (UTF-8 bytes or text); ``NaN``/``Infinity`` tokens are refused.

    >>> loads(b'{"a": [1, "x", null]}')
    {'a': [1, 'x', None]}
    """
    if isinstance(data, memoryview):
        data = bytes(data)
    if _orjson is not None:
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            pass   # e.g. an integer beyond 64 bits: the standard library reads it, or explains
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as err:
        if isinstance(err, PayloadError):
            raise
        raise PayloadError(f"not valid JSON: {err}") from err


def _refuse_constant(token: str) -> Any:
    raise PayloadError(f"not valid JSON: {token} is not a JSON value")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        value = obj.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value if not isinstance(value, (bytes, _dt.datetime, _dt.timedelta)) else _json_default(value)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, (pd.Timestamp, _dt.datetime, _dt.date, _dt.time)):
        return obj.isoformat()
    if isinstance(obj, (pd.Timedelta, _dt.timedelta)):
        return pd.Timedelta(obj).isoformat()
    if isinstance(obj, decimal.Decimal):
        return float(obj) if obj.is_finite() else None
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of small containers are built.

    The row lists built here hold no reference cycles, yet every collection triggered by
    their allocation would walk all of them: with the collector on, that dominates the time
    spent on large frames. On the way out, what was allocated meanwhile is moved to the
    oldest generation (``gc.freeze(); gc.unfreeze()``), so the first collection afterwards
    does not walk it either; this is skipped when the application froze objects itself.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


# --------------------------------------------------------------------------- type names

def column_types(df: pd.DataFrame) -> list[str]:
    """The AzureML ``ColumnTypes`` names for the columns of *df*, in order.

    >>> column_types(pd.DataFrame({"a": [1], "b": [0.5], "c": ["x"], "d": [True]}))
    ['Int64', 'Double', 'String', 'Boolean']
    """
    return [_column_type(df.iloc[:, i].dtype) for i in range(df.shape[1])]


def _column_type(dtype: Any) -> str:
    if isinstance(dtype, pd.CategoricalDtype):
        return _column_type(dtype.categories.dtype)
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "DateTime"
    if isinstance(dtype, pd.BooleanDtype):
        return "Boolean"
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iufb":
        dtype = np.dtype(dtype.numpy_dtype)
    if isinstance(dtype, np.dtype):
        if dtype.kind == "b":
            return "Boolean"
        if dtype.kind in "iu":
            return "Int32" if dtype.itemsize < 4 or (dtype.itemsize == 4 and dtype.kind == "i") else "Int64"
        if dtype.kind == "f":
            return "Single" if dtype.itemsize <= 4 else "Double"
        if dtype.kind == "M":
            return "DateTime"
    return "String"


_SWAGGER_BY_TYPE = {
    "Int32": {"type": "integer", "format": "int32"},
    "Int64": {"type": "integer", "format": "int64"},
    "Double": {"type": "number", "format": "double"},
    "Single": {"type": "number", "format": "float"},
    "Numeric": {"type": "number", "format": "double"},
    "Boolean": {"type": "boolean"},
    "String": {"type": "string"},
    "DateTime": {"type": "string", "format": "date-time"},
}


def swagger_properties(df: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Swagger 2.0 item ``properties`` for the columns of *df* (``{col: {"type", "format"}}``).

    >>> swagger_properties(pd.DataFrame({"n": [1], "t": ["x"]}))
    {'n': {'type': 'integer', 'format': 'int64'}, 't': {'type': 'string'}}
    """
    names = _column_names(df, "frame")
    return {name: dict(_SWAGGER_BY_TYPE[t]) for name, t in zip(names, column_types(df))}


def _swagger_type(prop: Mapping[str, Any]) -> str:
    kind, fmt = prop.get("type"), (prop.get("format") or "").lower()
    if kind == "integer":
        return "Int32" if fmt == "int32" else "Int64"
    if kind == "number":
        return "Single" if fmt == "float" else "Double"
    if kind == "boolean":
        return "Boolean"
    if kind == "string" and fmt in ("date-time", "date"):
        return "DateTime"
    if kind == "string" or kind is None:
        return "String"
    warnings.warn(f"unknown swagger type {kind!r}: the column is read as strings", stacklevel=3)
    return "String"


def schema_types(schema: Mapping[str, Any], name: str) -> dict[str, str] | None:
    """Column name -> ColumnType of ``{name}Item`` in a swagger.json (or its ``definitions``).

    Returns None when the schema does not describe *name*.

    >>> schema_types({"definitions": {"output1Item": {"type": "object", "properties": {
    ...     "n": {"type": "integer", "format": "int32"}, "t": {"type": "string"}}}}}, "output1")
    {'n': 'Int32', 't': 'String'}
    """
    definitions = schema.get("definitions", schema)
    item = definitions.get(f"{name}Item") if isinstance(definitions, Mapping) else None
    if not isinstance(item, Mapping) or not isinstance(item.get("properties"), Mapping):
        return None
    return {str(col): _swagger_type(prop if isinstance(prop, Mapping) else {})
            for col, prop in item["properties"].items()}


def _ctype(name: Any, where: str, column: Any) -> str:
    known = _CTYPE_BY_LOWER.get(str(name).lower())
    if known is None:
        warnings.warn(f"{where}column {column!r}: unknown ColumnType {name!r}, read as strings",
                      stacklevel=4)
        return "String"
    return known


# --------------------------------------------------------------------------- encoding

def _frames(data: Any, default_name: str, what: str) -> dict[str, pd.DataFrame]:
    if isinstance(data, pd.DataFrame):
        return {default_name: data}
    if isinstance(data, Mapping):
        if not data:
            raise PayloadError(f"no {what}: the mapping of name -> DataFrame is empty")
        out = {}
        for name, frame in data.items():
            if not isinstance(frame, pd.DataFrame):
                raise PayloadError(f"{what} {name!r} is a {type(frame).__name__}, expected a DataFrame")
            out[str(name)] = frame
        return out
    raise PayloadError(f"expected a DataFrame or a mapping of name -> DataFrame, got {type(data).__name__}")


def _check_format(format: str) -> str:
    if format not in FORMATS:
        raise PayloadError(f"format={format!r} is not one of {', '.join(map(repr, FORMATS))}")
    return format


def _column_names(df: pd.DataFrame, label: str) -> list[str]:
    names: list[str] = []
    seen: dict[str, Any] = {}
    for col in df.columns:
        name = col if isinstance(col, str) else str(col)
        if name in seen:
            first = seen[name]
            if first == col and type(first) is type(col):
                raise PayloadError(f"{label}: duplicate column name {name!r}", column=name)
            raise PayloadError(f"{label}: column names {first!r} and {col!r} collide as the string {name!r}",
                               column=name)
        seen[name] = col
        names.append(name)
    return names


def _where(label: str) -> str:
    return f"{label}: " if label else ""


def _encode_frame(df: pd.DataFrame, label: str, *, as_strings: bool, index: bool,
                  missing: Any = None) -> tuple[list[str], list[list]]:
    """Column names and, per column, a list of JSON-ready values (*missing* where missing)."""
    if index:
        df = df.reset_index()
    names = _column_names(df, label)
    columns = [_encode_column(df.iloc[:, i], names[i], label, as_strings=as_strings, null=missing)
               for i in range(df.shape[1])]
    return names, columns


def _bad(label: str, column: str, row: int, what: str) -> PayloadError:
    return PayloadError(f"{_where(label)}column {column!r}, row {row}: {what}", column=column, row=row)


def _fill(values: list, mask: np.ndarray | None, null: Any) -> list:
    """Put *null* into *values* where *mask* is set."""
    if mask is not None:
        for row in np.flatnonzero(mask).tolist():
            values[row] = null
    return values


def _encode_column(s: pd.Series, name: str, label: str, *, as_strings: bool, null: Any = None) -> list:
    """One column as a list of JSON values (*null* where missing)."""
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy()
        used = np.zeros(len(dtype.categories), dtype=bool)
        used[codes[codes >= 0]] = True
        try:
            cats = _encode_column(pd.Series(dtype.categories[used]), name, label, as_strings=as_strings)
        except PayloadError as err:
            category = np.flatnonzero(used)[err.row]
            row = int(np.flatnonzero(codes == category)[0])
            raise _bad(label, name, row, str(err).split(": ", 1)[-1].split(": ", 1)[-1]) from None
        lookup = np.empty(len(dtype.categories) + 1, dtype=object)
        lookup[np.flatnonzero(used)] = cats
        lookup[-1] = null   # code -1 (missing) picks the last slot
        return lookup[codes].tolist()
    if isinstance(dtype, pd.SparseDtype):
        return _encode_column(s.sparse.to_dense(), name, label, as_strings=as_strings, null=null)
    if isinstance(dtype, pd.DatetimeTZDtype):
        return _encode_datetimes(s, null)
    if isinstance(dtype, pd.StringDtype):
        return s.to_numpy(dtype=object, na_value=null).tolist()
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iufb":
        numpy_dtype = np.dtype(dtype.numpy_dtype)
        missing = s.isna().to_numpy()
        na_value = np.nan if numpy_dtype.kind == "f" else numpy_dtype.type(0)
        values = s.to_numpy(dtype=numpy_dtype, na_value=na_value)
        return _encode_numpy(values, missing if missing.any() else None, name, label, as_strings, null)
    if isinstance(dtype, np.dtype) and dtype.kind in "biufM":
        return _encode_numpy(s.to_numpy(), None, name, label, as_strings, null)
    values = _encode_objects(s.to_numpy(dtype=object), name, label, as_strings)
    return _fill(values.tolist(), pd.isna(values) if null is not None and len(values) else None, null)


def _encode_numpy(values: np.ndarray, missing: np.ndarray | None, name: str, label: str,
                  as_strings: bool, null: Any = None) -> list:
    kind = values.dtype.kind
    if kind == "M":
        return _encode_datetimes(pd.Series(values, copy=False), null)
    if kind == "f":
        nan = np.isnan(values)
        if missing is not None:
            nan |= missing
        inf = np.isinf(values)
        if inf.any():
            row = int(np.flatnonzero(inf)[0])
            raise _bad(label, name, row, f"{values[row]} is not allowed (JSON has no infinity)")
        if values.dtype.itemsize < 8:
            # the shortest text of the float32 value, not of its float64 widening (0.1, not 0.10000000149011612)
            out = values.astype(str).tolist()
            if not as_strings:
                out = [float(v) for v in out]
        else:
            out = values.tolist()
            if as_strings:
                out = list(map(repr, out))
        return _fill(out, nan if nan.any() else None, null)
    if kind == "b":
        out = np.where(values, "True", "False").tolist() if as_strings else values.tolist()
    else:  # integers
        out = values.astype(str).tolist() if as_strings else values.tolist()
    return _fill(out, missing, null)


def _datetime_text(values: np.ndarray) -> np.ndarray:
    """ISO 8601 text of naive datetime64 values, one precision for the whole column.

    The precision is the coarsest of s, ms, us, ns that keeps every value exact, so
    midnight still reads ``2024-01-01T00:00:00``. NaT rows hold junk (callers blank them).
    Years 1..9999 are formatted with integer arithmetic (``np.datetime_as_string`` is
    several times slower); others fall back to it.
    """
    unit = np.datetime_data(values.dtype)[0]
    units = ["s", "ms", "us", "ns"]
    if unit not in units:
        values, unit = values.astype("datetime64[s]"), "s"
    finest = units.index(unit)
    nat = np.isnat(values)
    ticks = np.where(nat, 0, values.view(np.int64))
    digits = 0
    for i in range(finest + 1):
        if not (ticks % 10 ** (3 * (finest - i))).any():
            digits = 3 * i
            break
    per_second = 10 ** (3 * finest)
    seconds, fraction = np.divmod(ticks, per_second)
    fraction //= 10 ** (3 * finest - digits)
    days, clock = np.divmod(seconds, 86400)
    year, month, day = _civil_from_days(days)
    if len(year) and (year.min() < 1 or year.max() > 9999):
        return np.datetime_as_string(values, unit=units[digits // 3]).astype(object)
    hour, rest = np.divmod(clock, 3600)
    minute, second = np.divmod(rest, 60)
    fields = [("Y", "S4"), ("_1", "S1"), ("M", "S2"), ("_2", "S1"), ("D", "S2"), ("_3", "S1"), ("h", "S2"),
              ("_4", "S1"), ("m", "S2"), ("_5", "S1"), ("s", "S2")]
    if digits:
        fields += [("_6", "S1")] + [(f"f{k}", "S3") for k in range(digits // 3)]
    text = np.empty(len(ticks), dtype=fields)
    for name, mark in (("_1", b"-"), ("_2", b"-"), ("_3", b"T"), ("_4", b":"), ("_5", b":"), ("_6", b".")):
        if name in text.dtype.names:
            text[name] = mark
    text["Y"], text["M"], text["D"] = _DIGITS4[year], _DIGITS2[month], _DIGITS2[day]
    text["h"], text["m"], text["s"] = _DIGITS2[hour], _DIGITS2[minute], _DIGITS2[second]
    for k in range(digits // 3):
        text[f"f{k}"] = _DIGITS3[fraction // 10 ** (digits - 3 * (k + 1)) % 1000]
    width = text.dtype.itemsize
    return text.view(f"S{width}").astype(f"U{width}").astype(object)


_DIGITS2 = np.array([f"{i:02d}".encode() for i in range(100)], dtype="S2")
_DIGITS3 = np.array([f"{i:03d}".encode() for i in range(1000)], dtype="S3")
_DIGITS4 = np.array([f"{i:04d}".encode() for i in range(10000)], dtype="S4")


def _civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, day) of days since 1970-01-01, proleptic Gregorian (H. Hinnant's algorithm)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def _encode_datetimes(s: pd.Series, null: Any = None) -> list:
    """ISO 8601 text; a tz-aware value keeps its UTC offset (``+01:00``)."""
    s = pd.Series(s.array, copy=False)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        wall = s.dt.tz_localize(None).to_numpy()
        utc = s.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        ticks_per_s = 10 ** {"s": 0, "ms": 3, "us": 6, "ns": 9}.get(np.datetime_data(wall.dtype)[0], 9)
        offsets = (wall.view(np.int64) - utc.view(np.int64)) // ticks_per_s   # NaT rows: blanked below
        odd = offsets % 60 != 0   # local mean time offsets such as -03:30:52 are not ISO 8601: write UTC
        if odd.any():
            wall = np.where(odd, utc, wall)
            offsets = np.where(odd, 0, offsets)
        text = _datetime_text(wall)
        suffix = {off: _offset_text(off) for off in np.unique(offsets).tolist()}
        out = text + np.array([suffix[o] for o in offsets.tolist()], dtype=object) if len(s) else text
    else:
        out = _datetime_text(s.to_numpy())
    missing = s.isna().to_numpy()
    return _fill(out.tolist(), missing if missing.any() else None, null)


def _offset_text(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    text = f"{sign}{hours:02d}:{rest // 60:02d}"
    return text + (f":{rest % 60:02d}" if rest % 60 else "")


def _encode_objects(values: np.ndarray, name: str, label: str, as_strings: bool) -> np.ndarray:
    """An object column, value by value (strings pass through untouched)."""
    items = values.tolist()
    if all(type(v) is str for v in items):
        return values
    out = np.empty(len(items), dtype=object)
    out[:] = [v if type(v) is str else _encode_value(v, name, label, row, as_strings)
              for row, v in enumerate(items)]
    return out


def _encode_value(v: Any, name: str, label: str, row: int, as_strings: bool) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, str):
        return str(v)
    if isinstance(v, (bool, np.bool_)):
        return ("True" if v else "False") if as_strings else bool(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v)) if as_strings else int(v)
    if isinstance(v, decimal.Decimal):
        if v.is_nan():
            return None
        if not v.is_finite():
            raise _bad(label, name, row, f"{v} is not allowed (JSON has no infinity)")
        return str(v) if as_strings else float(v)
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return None
        if math.isinf(v):
            raise _bad(label, name, row, f"{v} is not allowed (JSON has no infinity)")
        if isinstance(v, np.floating) and v.dtype.itemsize < 8:
            return str(v) if as_strings else float(str(v))
        return repr(float(v)) if as_strings else float(v)
    if isinstance(v, np.datetime64):
        return None if np.isnat(v) else pd.Timestamp(v).isoformat()
    if isinstance(v, (pd.Timestamp, _dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, (pd.Timedelta, _dt.timedelta, np.timedelta64)):
        return None if pd.isna(v) else pd.Timedelta(v).isoformat()
    if isinstance(v, _NESTED) or isinstance(v, np.ndarray):
        raise _bad(label, name, row, f"a {type(v).__name__} cannot be a cell value (nested or binary data)")
    return str(v)


def to_payload(data: pd.DataFrame | Mapping[str, pd.DataFrame], *, format: str = "classic",
               input_name: str = "input1", global_parameters: Mapping[str, Any] | None = None,
               numbers_as_strings: bool = False, index: bool = False) -> dict:
    """Build the request body of an AzureML web service from a DataFrame (or several).

    Parameters
    ----------
    data : DataFrame or mapping of input name -> DataFrame
        One input (named *input_name*) or several.
    format : {"classic", "swagger"}
        ``"classic"``: ``ColumnNames`` + ``Values`` rows; ``"swagger"``: one record per row.
    input_name : str
        The input's name when *data* is a single DataFrame.
    global_parameters : mapping, optional
        Sent as ``GlobalParameters`` (``{}`` when omitted), as plain JSON values (numpy
        scalars become numbers, timestamps ISO 8601 text).
    numbers_as_strings : bool
        Send numbers and booleans as strings (``"5"``, ``"0.5"``, ``"True"``), as Studio's
        own samples do. Default: JSON numbers and booleans.
    index : bool
        Send the index as leading column(s) (``reset_index()``); by default it is not sent.

    Returns
    -------
    dict
        The body; encode it with :func:`dumps`.

    Missing values (NaN, None, NA, NaT) are sent as ``null``; datetimes as ISO 8601 text
    (a tz-aware value keeps its offset); categoricals as their categories' values; nullable
    Int64/Float64/boolean/string columns like their numpy counterparts. Column and row
    order are kept.

    Raises
    ------
    PayloadError
        For an unknown *format*, duplicate column names, non-string names that collide once
        stringified, an infinity, or a nested value (dict/list/set/tuple) or bytes in a cell;
        the message names the input, the column and the first bad row.

    Examples
    --------
    >>> df = pd.DataFrame({"Col2": ["This is a good day"]})
    >>> to_payload(df)
    {'Inputs': {'input1': {'ColumnNames': ['Col2'], 'Values': [['This is a good day']]}}, 'GlobalParameters': {}}
    >>> to_payload(df, format="swagger", global_parameters={"Bits": 3})
    {'Inputs': {'input1': [{'Col2': 'This is a good day'}]}, 'GlobalParameters': {'Bits': 3}}
    """
    _check_format(format)
    frames = _frames(data, input_name, "input")
    inputs: dict[str, Any] = {}
    with _no_gc():
        for name, df in frames.items():
            names, columns = _encode_frame(df, f"input {name!r}", as_strings=numbers_as_strings, index=index)
            inputs[name] = _shape(names, columns, len(df), format)
    # plain JSON values (numpy scalars, Timestamps, ... converted), so any JSON encoder can write the body
    parameters = loads(dumps(dict(global_parameters))) if global_parameters else {}
    return {"Inputs": inputs, "GlobalParameters": parameters}


def _shape(names: list[str], columns: list[list], nrows: int, format: str) -> Any:
    if format == "swagger":
        return [dict(zip(names, row)) for row in zip(*columns)] if columns else [{} for _ in range(nrows)]
    rows = list(map(list, zip(*columns))) if columns else [[] for _ in range(nrows)]
    return {"ColumnNames": names, "Values": rows}


def to_response(outputs: pd.DataFrame | Mapping[str, pd.DataFrame], *, format: str = "classic",
                details: bool = True, output_name: str = "output1") -> dict:
    """Build a web service's response body, the way Studio does (server side).

    Every value is a string, a missing one the empty string. With ``details=True`` each
    classic output carries ``ColumnNames`` and ``ColumnTypes`` (from the dtypes, see
    :func:`column_types`); without, both are left out, as real services do.

    Examples
    --------
    >>> to_response(pd.DataFrame({"n": [1, 2], "x": [0.5, None]}))["Results"]["output1"]
    {'type': 'table', 'value': {'ColumnNames': ['n', 'x'], 'ColumnTypes': ['Int64', 'Double'], 'Values': [['1', '0.5'], ['2', '']]}}
    >>> to_response(pd.DataFrame({"n": [1]}), format="swagger")
    {'Results': {'output1': [{'n': '1'}]}}
    """
    _check_format(format)
    frames = _frames(outputs, output_name, "output")
    results: dict[str, Any] = {}
    with _no_gc():
        for name, df in frames.items():
            names, columns = _encode_frame(df, f"output {name!r}", as_strings=True, index=False, missing="")
            if format == "swagger":
                results[name] = _shape(names, columns, len(df), "swagger")
                continue
            value: dict[str, Any] = {}
            if details:
                value["ColumnNames"] = names
                value["ColumnTypes"] = column_types(df)
            value["Values"] = _shape(names, columns, len(df), "classic")["Values"]
            results[name] = {"type": "table", "value": value}
    return {"Results": results}


# --------------------------------------------------------------------------- decoding: values

def _parse_error(label: str, column: str, row: int, value: Any, ctype: str) -> PayloadError:
    return PayloadError(f"{_where(label)}column {column!r}, row {row}: {value!r} does not parse as {ctype}",
                        column=column, row=row)


def _first_bad(arr: np.ndarray, miss: np.ndarray, ok: Any) -> int:
    for row in np.flatnonzero(~miss).tolist():
        if not ok(arr[row]):
            return row
    return -1


def _int_ok(v: Any) -> bool:
    """Whether *v* reads as a 64-bit integer (an integral float such as 3.0 counts)."""
    if isinstance(v, bool) or isinstance(v, _NESTED):
        return False
    if isinstance(v, float) and not v.is_integer():
        return False
    try:
        n = int(v)
    except (TypeError, ValueError, OverflowError):
        return False
    return -2**63 <= n < 2**63


def _single_overflow(floats: np.ndarray) -> np.ndarray:
    """Finite doubles that round to infinity as float32."""
    with np.errstate(over="ignore"):
        return np.isfinite(floats) & np.isinf(floats.astype(np.float32))


def _float_ok(v: Any) -> bool:
    if isinstance(v, bool) or isinstance(v, _NESTED):
        return False
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _bool_value(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        low = v.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    elif isinstance(v, int) and v in (0, 1):
        return bool(v)
    return None


def _text(v: Any) -> str:
    """A non-string JSON value as text, for a String column."""
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _ints_column(ints: np.ndarray, miss: np.ndarray | None, ctype: str) -> Any:
    """Integers (present values only) placed into a column; gaps give a nullable dtype."""
    bits = np.int32 if ctype == "Int32" else np.int64
    if miss is None or not miss.any():
        return ints.astype(bits, copy=False)
    full = np.zeros(len(miss), dtype=bits)
    full[~miss] = ints
    return pd.arrays.IntegerArray(full, miss.copy())


def _floats_column(floats: np.ndarray, miss: np.ndarray | None, ctype: str) -> np.ndarray:
    bits = np.float32 if ctype == "Single" else np.float64
    if miss is None or not miss.any():
        return floats.astype(bits, copy=False)
    full = np.full(len(miss), np.nan, dtype=bits)
    full[~miss] = floats
    return full


def _bools_column(flags: np.ndarray, miss: np.ndarray | None) -> Any:
    if miss is None or not miss.any():
        return flags
    full = np.zeros(len(miss), dtype=bool)
    full[~miss] = flags
    return pd.arrays.BooleanArray(full, miss.copy())


def _strings_column(arr: np.ndarray) -> Any:
    """An object array of str/None as the default string dtype of this pandas."""
    if _STR_DTYPE is object:
        return arr
    return pd.array(arr, dtype=_STR_DTYPE)


def _parse_column(values: Sequence[Any], ctype: str, column: str, label: str, *,
                  empty_is_missing: bool = True) -> Any:
    """Read one column's wire values (strings, numbers, booleans, null) as *ctype*.

    null is missing everywhere; an empty string is missing except in a String column read
    with ``empty_is_missing=False``. Raises PayloadError naming the column and first bad row.
    """
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    null = pd.isna(arr) if len(arr) else np.zeros(0, dtype=bool)
    miss = null | (arr == "") if len(arr) else null
    present = arr[~miss]
    if ctype in ("Int32", "Int64"):
        ints = None
        if all(type(v) is str or type(v) is int for v in present):
            try:
                ints = np.array([int(v) for v in present], dtype=np.int64) if len(present) \
                    else np.zeros(0, np.int64)
            except (ValueError, OverflowError):
                ints = None
        if ints is None:
            bad = _first_bad(arr, miss, _int_ok)
            if bad >= 0:
                raise _parse_error(label, column, bad, arr[bad], ctype)
            ints = np.array([int(v) for v in present], dtype=np.int64)
        if ctype == "Int32" and len(ints) and (ints.min() < -2**31 or ints.max() >= 2**31):
            row = int(np.flatnonzero(~miss)[np.flatnonzero((ints < -2**31) | (ints >= 2**31))[0]])
            raise _parse_error(label, column, row, arr[row], ctype)
        return _ints_column(ints, miss, ctype)
    if ctype in ("Double", "Single", "Numeric"):
        try:
            if any(type(v) is bool for v in present):
                raise ValueError
            floats = np.array([float(v) for v in present], dtype=np.float64) if len(present) \
                else np.zeros(0, np.float64)
        except (TypeError, ValueError):
            bad = _first_bad(arr, miss, _float_ok)
            raise _parse_error(label, column, bad, arr[bad], ctype) from None
        if ctype == "Single" and len(floats):
            too_big = _single_overflow(floats)
            if too_big.any():
                row = int(np.flatnonzero(~miss)[np.flatnonzero(too_big)[0]])
                raise _parse_error(label, column, row, arr[row], ctype)
        return _floats_column(floats, miss, ctype)
    if ctype == "Boolean":
        flags = [_bool_value(v) for v in present]
        if any(f is None for f in flags):
            bad = _first_bad(arr, miss, lambda v: _bool_value(v) is not None)
            raise _parse_error(label, column, bad, arr[bad], ctype)
        return _bools_column(np.array(flags, dtype=bool), miss)
    if ctype == "DateTime":
        bad = _first_bad(arr, miss, lambda v: type(v) is str)
        if bad >= 0:
            raise _parse_error(label, column, bad, arr[bad], "DateTime")
        return _parse_datetimes(arr, miss, column, label)
    # String
    if not empty_is_missing:
        miss = null
    if not all(type(v) is str for v in arr[~miss]):
        arr = arr.copy()
        for row in np.flatnonzero(~miss).tolist():
            v = arr[row]
            if type(v) is not str:
                if isinstance(v, _NESTED):
                    raise PayloadError(f"{_where(label)}column {column!r}, row {row}: a {type(v).__name__} "
                                       "cannot be a cell value", column=column, row=row)
                arr[row] = _text(v)
    arr[miss] = None
    return _strings_column(arr)


def _parse_datetimes(arr: np.ndarray, miss: np.ndarray, column: str, label: str) -> Any:
    """ISO 8601 text (all str where not missing) to datetime64; mixed UTC offsets become UTC."""
    if not (~miss).any():
        return np.full(len(arr), np.datetime64("NaT"), dtype="datetime64[ns]")
    texts = arr.copy()
    texts[miss] = None
    try:
        return pd.to_datetime(texts, format="ISO8601").array
    except (ValueError, TypeError, OverflowError):
        pass
    try:
        return pd.to_datetime(texts, format="ISO8601", utc=True).array
    except (ValueError, TypeError, OverflowError):
        pass
    for row in np.flatnonzero(~miss).tolist():
        try:
            pd.to_datetime(arr[row], format="ISO8601")
        except (ValueError, TypeError, OverflowError):
            raise _parse_error(label, column, row, arr[row], "DateTime") from None
    raise PayloadError(f"{_where(label)}column {column!r}: cannot read as DateTime", column=column)


def _infer_type(values: Sequence[Any]) -> str:
    """The ColumnType for request values sent without types (JSON numbers stay numbers)."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if not kinds:
        return "String"
    if kinds == {bool}:
        return "Boolean"
    if kinds == {int}:
        return "Int64"
    if kinds <= {int, float}:
        return "Double"
    return "String"


def _check_rows(values: Any, width: int, label: str) -> None:
    if not isinstance(values, (list, tuple)):
        raise PayloadError(f"{_where(label)}Values must be a list of rows, got {type(values).__name__}")
    for row, r in enumerate(values):
        if not isinstance(r, (list, tuple)):
            raise PayloadError(f"{_where(label)}row {row} is a {type(r).__name__}, expected a list", row=row)
    lengths = set(map(len, values))
    if len(lengths) > 1 or (values and width not in lengths):
        if len(values[0]) != width:
            raise PayloadError(f"{_where(label)}ColumnNames/Values width mismatch: {width} ColumnNames "
                               f"but row 0 has {len(values[0])} values", row=0)
        row = next(i for i, r in enumerate(values) if len(r) != width)
        raise PayloadError(f"{_where(label)}ragged Values: row {row} has {len(values[row])} values, "
                           f"expected {width}", row=row)


def _types_for(columns: list[str], types: Sequence[str] | None, label: str) -> list[str | None]:
    if types is None:
        return [None] * len(columns)
    if not isinstance(types, (list, tuple)) or len(types) != len(columns):
        raise PayloadError(f"{_where(label)}{len(columns)} ColumnNames but "
                           f"{len(types) if isinstance(types, (list, tuple)) else types!r} ColumnTypes")
    return [_ctype(t, _where(label), c) for t, c in zip(types, columns)]


def _column_list(columns: Any, label: str) -> list[str]:
    if not isinstance(columns, (list, tuple)):
        raise PayloadError(f"{_where(label)}ColumnNames must be a list, got {type(columns).__name__}")
    names = [c if isinstance(c, str) else str(c) for c in columns]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PayloadError(f"{_where(label)}duplicate column name {name!r}", column=name)
        seen.add(name)
    return names


def read_values(columns: Sequence[str], types: Sequence[str] | None, values: Sequence[Sequence[Any]],
                *, label: str = "", empty_is_missing: bool = False) -> pd.DataFrame:
    """Read classic ``Values`` rows into a typed DataFrame (what a server does with a request).

    Parameters
    ----------
    columns : sequence of str
        The column names.
    types : sequence of str or None
        One AzureML ColumnType per column (``"Int32"``, ``"Double"``, ...); None infers each
        column from its JSON values (numbers, booleans; anything else stays text).
    values : sequence of rows
        Each row holds one value per column: a string, a JSON number or boolean, or null.
    label : str
        Names the input/output in error messages, e.g. ``"input 'input1'"``.
    empty_is_missing : bool
        Whether an empty string in a String column is a missing value (as in responses);
        in the other columns it always is.

    Raises
    ------
    PayloadError
        Ragged rows, a row width different from the number of columns, or a value that does
        not parse as its ColumnType; the message names the column and the first bad row.

    Examples
    --------
    >>> df = read_values(["n", "x"], ["Int32", "Double"], [["1", "0.5"], ["2", ""]])
    >>> df.dtypes.astype(str).tolist(), df["x"].isna().tolist()
    (['int32', 'float64'], [False, True])
    >>> read_values(["n"], ["Int32"], [["1"], ["one"]])
    Traceback (most recent call last):
    ...
    azml_nb.errors.PayloadError: column 'n', row 1: 'one' does not parse as Int32
    """
    names = _column_list(list(columns) if not isinstance(columns, (list, tuple)) else columns, label)
    ctypes = _types_for(names, types, label)
    with _no_gc():
        _check_rows(values, len(names), label)
        cols = list(zip(*values)) if values and names else [() for _ in names]
        data = {}
        for i, name in enumerate(names):
            ctype = ctypes[i] or _infer_type(cols[i])
            data[name] = _parse_column(cols[i], ctype, name, label, empty_is_missing=empty_is_missing)
        cols = None
        return _frame(data, names, len(values))


def _frame(data: dict[str, Any], columns: list[str], nrows: int) -> pd.DataFrame:
    if not columns:
        return pd.DataFrame(index=pd.RangeIndex(nrows))
    return pd.DataFrame(data, columns=columns, copy=False)


# --------------------------------------------------------------------------- decoding: bodies

_FAST_MIN_BYTES = 1 << 15      # smaller bodies: the plain reader is as fast


def _sections(obj: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping) or key not in obj:
        found = sorted(obj)[:5] if isinstance(obj, Mapping) else type(obj).__name__
        raise PayloadError(f"expected a JSON object with {key!r}, got {found}")
    section = obj[key]
    if not isinstance(section, Mapping) or not section:
        raise PayloadError(f"{key!r} must be a non-empty object of name -> table")
    return section


def _read_table(name: str, table: Any, kind: str, format: str | None, types_by_col: dict[str, str] | None,
                empty_is_missing: bool, spans: dict[str, _fastread.Spans] | None) -> pd.DataFrame:
    label = f"{kind} {name!r}"
    if isinstance(table, list):  # swagger records
        if format == "classic":
            raise PayloadError(f"{label}: expected a classic ColumnNames/Values table, got swagger records")
        return _read_records(table, label, types_by_col, empty_is_missing)
    if not isinstance(table, Mapping):
        raise PayloadError(f"{label}: expected a table or a list of records, got {type(table).__name__}")
    if format == "swagger":
        raise PayloadError(f"{label}: expected swagger records, got a classic table")
    if "Values" not in table:
        raise PayloadError(f"{label}: the table has no 'Values'")
    values = table["Values"]
    sp = spans.pop(values, None) if spans is not None and isinstance(values, str) else None
    if sp is None and spans is not None and isinstance(values, str) and values.startswith("\x00azml_nb:"):
        raise _fastread.NoFastPath
    names = table.get("ColumnNames")
    ctypes = table.get("ColumnTypes")
    if names is None:
        if types_by_col is not None:
            names = list(types_by_col)
        else:
            width = sp.shape[1] if sp is not None else \
                (len(values[0]) if isinstance(values, list) and values and isinstance(values[0], list) else 0)
            names = [f"Col{i + 1}" for i in range(width)]
    names = _column_list(names, label)
    if ctypes is None and types_by_col is not None:
        ctypes = [types_by_col.get(n, "String") for n in names]
    if sp is not None:
        return _fastread.read_spans(sp, names, _types_for(names, ctypes, label), label, empty_is_missing)
    return read_values(names, ctypes, values, label=label, empty_is_missing=empty_is_missing)


def _read_records(records: list, label: str, types_by_col: dict[str, str] | None,
                  empty_is_missing: bool) -> pd.DataFrame:
    names: dict[str, None] = dict.fromkeys(types_by_col) if types_by_col else {}
    for row, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise PayloadError(f"{label}: record {row} is a {type(rec).__name__}, expected an object", row=row)
        if len(rec) != len(names) or not rec.keys() <= names.keys():
            names.update(dict.fromkeys(rec))
    cols = list(names)
    values = [[rec.get(c) for c in cols] for rec in records]
    ctypes = [types_by_col.get(c, "String") for c in cols] if types_by_col else None
    return read_values(cols, ctypes, values, label=label, empty_is_missing=empty_is_missing)


def _decode(body: Any, key: str, kind: str, *, schema: Mapping[str, Any] | None, format: str | None,
            empty_is_missing: bool) -> pd.DataFrame | dict[str, pd.DataFrame]:
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        fast = _fastread.scan(data) if len(data) >= _FAST_MIN_BYTES else None
        if fast is not None:
            try:
                skeleton = loads(fast[0])
                return _read_sections(skeleton, key, kind, schema, format, empty_is_missing, dict(fast[1]))
            except (_fastread.NoFastPath, PayloadError):
                log.debug("vectorised reader declined; reading %d bytes the plain way", len(data))
        with _no_gc():
            body = loads(data)
    return _read_sections(body, key, kind, schema, format, empty_is_missing, None)


def _read_sections(obj: Any, key: str, kind: str, schema: Mapping[str, Any] | None, format: str | None,
                   empty_is_missing: bool, spans: dict[str, _fastread.Spans] | None) -> Any:
    out = {}
    for name, table in _sections(obj, key).items():
        types = schema_types(schema, name) if schema is not None else None
        if key == "Results" and isinstance(table, Mapping) and isinstance(table.get("value"), Mapping):
            if table.get("type") not in (None, "table", "DataTable"):
                log.warning("output %r has type %r; reading it as a table", name, table.get("type"))
            table = table["value"]
        out[name] = _read_table(name, table, kind, format, types, empty_is_missing, spans)
    if spans:   # a "Values" array somewhere else (a record's cell, GlobalParameters): read it all plainly
        raise _fastread.NoFastPath
    return out if len(out) > 1 else next(iter(out.values()))


def from_payload(payload: Any, *, format: str | None = None,
                 schema: Mapping[str, Any] | None = None) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Read a request body back into DataFrames (the inverse of :func:`to_payload`).

    Parameters
    ----------
    payload : dict, bytes or str
        ``{"Inputs": {...}, "GlobalParameters": {...}}`` in classic or swagger format.
        Pass the raw bytes when you have them: large bodies are then read column by column
        without building a Python list per row.
    format : {"classic", "swagger"}, optional
        Insist on one format; by default each input's shape says which.
    schema : mapping, optional
        The service's swagger.json (or its ``definitions``): each input is read against
        ``{input}Item``'s types, so strings such as ``"5"`` become numbers, and a value that
        does not parse raises :class:`PayloadError` naming the column and row (a server
        answers that with 400 InputParseError). Without a schema, columns of JSON numbers
        become int64/float64 (nullable ``Int64`` with gaps), booleans bool, and anything
        else stays text.

    Returns
    -------
    DataFrame, or a dict of name -> DataFrame when there are several inputs.
    ``GlobalParameters`` is not read here: take it from the body.

    Examples
    --------
    >>> body = to_payload(pd.DataFrame({"n": [1, None], "t": ["a", "b"]}).astype({"n": "Int64"}))
    >>> body["Inputs"]["input1"]["Values"]
    [[1, 'a'], [None, 'b']]
    >>> from_payload(body).dtypes.astype(str).tolist()
    ['Int64', 'str']
    """
    if format is not None:
        _check_format(format)
    return _decode(payload, "Inputs", "input", schema=schema, format=format, empty_is_missing=False)


def from_response(body: Any, *, schema: Mapping[str, Any] | None = None) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Read a web service's response body into typed DataFrames.

    Parameters
    ----------
    body : bytes, str or dict
        ``{"Results": {"output1": {"type": "table" | "DataTable", "value": {...}}}}`` or the
        swagger form ``{"Results": {"output1": [{...}, ...]}}``. Pass the raw bytes when you
        have them: large bodies are then read column by column.
    schema : mapping, optional
        The service's swagger.json (or its ``definitions``). Used when a response has no
        ``ColumnTypes`` or no ``ColumnNames`` (``output1Item`` gives the names and types),
        and for swagger-format responses. Without either, columns are named ``Col1..ColN``
        and kept as strings.

    Every value may be a string; ``ColumnTypes`` says how to read it: Int32/Int64 as
    int32/int64 (nullable ``Int32``/``Int64`` when there are gaps), Double/Numeric as
    float64, Single as float32, Boolean as bool (nullable ``boolean`` with gaps), DateTime
    as datetime64 (a UTC offset is kept; mixed offsets become UTC), String as text. Empty
    strings and nulls are missing values; unknown type names are read as text with a warning.

    Returns
    -------
    DataFrame, or a dict of name -> DataFrame when there are several outputs.

    Raises
    ------
    PayloadError
        Invalid JSON, ragged rows, a ColumnNames/Values width mismatch, or a value that does
        not parse as its ColumnType (the message names the column and the first bad row).

    Examples
    --------
    >>> body = {"Results": {"output1": {"type": "table", "value": {"ColumnNames": ["n", "x"],
    ...     "ColumnTypes": ["Int32", "Double"], "Values": [["1", "0.5"], ["", "2"]]}}}}
    >>> df = from_response(body)
    >>> df.dtypes.astype(str).tolist(), df["n"].tolist()
    (['Int32', 'float64'], [1, <NA>])
    """
    return _decode(body, "Results", "output", schema=schema, format=None, empty_is_missing=True)
