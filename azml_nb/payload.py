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
import json
import logging
import math
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

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
    ``null``. Keys must be strings.

    >>> dumps({"a": [1, 2.5, float("nan"), "é"]})
    b'{"a":[1,2.5,null,"\\xc3\\xa9"]}'
    """
    if _orjson is not None:
        try:
            return _orjson.dumps(obj, default=_json_default, option=_orjson.OPT_SERIALIZE_NUMPY)
        except TypeError as err:
            raise PayloadError(f"cannot encode as JSON: {err}") from err
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                          default=_json_default)
    except ValueError:  # a non-finite float somewhere: write it as null, like the fast path
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
        except _orjson.JSONDecodeError as err:
            raise PayloadError(f"not valid JSON: {err}") from err
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

    The containers built here hold no cycles; without this, collections triggered by the
    allocations dominate the time spent on large frames.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
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


def _encode_frame(df: pd.DataFrame, label: str, *, as_strings: bool, index: bool) -> tuple[list[str], list[list]]:
    """Column names and per-column lists of JSON-ready values."""
    if index:
        df = df.reset_index()
    names = _column_names(df, label)
    columns = [_encode_column(df.iloc[:, i], names[i], label, as_strings=as_strings)
               for i in range(df.shape[1])]
    return names, columns


def _bad(label: str, column: str, row: int, what: str) -> PayloadError:
    return PayloadError(f"{_where(label)}column {column!r}, row {row}: {what}", column=column, row=row)


def _encode_column(s: pd.Series, name: str, label: str, *, as_strings: bool) -> list:
    """One column as a list of JSON values (None for missing)."""
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy()
        try:
            cats = _encode_column(pd.Series(dtype.categories), name, label, as_strings=as_strings)
        except PayloadError as err:
            row = int(np.flatnonzero(codes == err.row)[0]) if err.row is not None and (codes == err.row).any() else None
            if row is None:  # an unused bad category does no harm: drop it
                return _encode_column(s.astype(object), name, label, as_strings=as_strings)
            raise _bad(label, name, row, str(err).split(": ", 2)[-1]) from None
        lookup = np.empty(len(cats) + 1, dtype=object)
        lookup[:-1] = cats
        lookup[-1] = None
        return lookup[codes].tolist()
    if isinstance(dtype, pd.SparseDtype):
        return _encode_column(s.sparse.to_dense(), name, label, as_strings=as_strings)
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iufb" \
            and not isinstance(dtype, pd.CategoricalDtype):
        numpy_dtype = np.dtype(dtype.numpy_dtype)
        missing = s.isna().to_numpy()
        if numpy_dtype.kind == "f":
            values = s.to_numpy(dtype=numpy_dtype, na_value=np.nan)
        else:
            values = s.to_numpy(dtype=numpy_dtype, na_value=numpy_dtype.type(0))
        return _encode_numpy(values, missing if missing.any() else None, name, label, as_strings)
    if isinstance(dtype, pd.DatetimeTZDtype):
        return _encode_datetimes(s, name, label)
    if isinstance(dtype, pd.StringDtype):
        return s.to_numpy(dtype=object, na_value=None).tolist()
    if isinstance(dtype, np.dtype) and dtype.kind in "biufM":
        return _encode_numpy(s.to_numpy(), None, name, label, as_strings)
    return _encode_objects(s.to_numpy(dtype=object), name, label, as_strings)


def _encode_numpy(values: np.ndarray, missing: np.ndarray | None, name: str, label: str,
                  as_strings: bool) -> list:
    kind = values.dtype.kind
    if kind == "M":
        return _encode_datetimes(pd.Series(values), name, label)
    if kind == "f":
        nan = np.isnan(values)
        if missing is not None:
            nan |= missing
        inf = np.isinf(values)
        if inf.any():
            row = int(np.flatnonzero(inf)[0])
            raise _bad(label, name, row, f"{values[row]} is not allowed (JSON has no infinity)")
        if values.dtype.itemsize < 8:   # shortest text of the float32/float16 value, not of its float64 widening
            out = values.astype(str).astype(object)
            if not as_strings:
                out = np.array([float(v) for v in out], dtype=object)
        else:
            out = np.array(list(map(repr, values.tolist())), dtype=object) if as_strings \
                else values.astype(object)
        if nan.any():
            out[nan] = None
        return out.tolist()
    if kind == "b":
        out = np.where(values, "True", "False").astype(object) if as_strings else values.astype(object)
    else:  # integers
        out = values.astype(str).astype(object) if as_strings else values.astype(object)
    if missing is not None:
        out[missing] = None
    return out.tolist()


def _datetime_text(values: np.ndarray) -> np.ndarray:
    """ISO 8601 text of naive datetime64 values, one precision for the whole column.

    The precision is the coarsest of s, ms, us, ns that keeps every value exact, so
    midnight still reads ``2024-01-01T00:00:00``; NaT becomes ``"NaT"`` (replaced by callers).
    """
    unit = np.datetime_data(values.dtype)[0]
    units = ["s", "ms", "us", "ns"]
    finest = units.index(unit) if unit in units else 3
    ticks = values.view(np.int64)
    present = ticks[~np.isnat(values)]
    chosen = unit if unit in units else "ns"
    for i, u in enumerate(units[:finest + 1]):
        step = 10 ** (3 * (finest - i))
        if not len(present) or not (present % step).any():
            chosen = u
            break
    return np.datetime_as_string(values, unit=chosen).astype(object)


def _encode_datetimes(s: pd.Series, name: str, label: str) -> list:
    """ISO 8601 text; a tz-aware value keeps its UTC offset (``+01:00``)."""
    s = pd.Series(s.array, copy=False)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        wall = s.dt.tz_localize(None).to_numpy()
        utc = s.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        ns = (wall.astype("datetime64[ns]").view(np.int64) - utc.astype("datetime64[ns]").view(np.int64))
        offsets = ns // 10**9  # NaT - NaT is 0 here; those rows are blanked below
        text = _datetime_text(wall)
        suffix = {off: _offset_text(off) for off in np.unique(offsets).tolist()}
        out = text + np.array([suffix[o] for o in offsets.tolist()], dtype=object) if len(s) else text
    else:
        out = _datetime_text(s.to_numpy())
    missing = s.isna().to_numpy()
    if missing.any():
        out[missing] = None
    return out.tolist()


def _offset_text(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    text = f"{sign}{hours:02d}:{rest // 60:02d}"
    return text + (f":{rest % 60:02d}" if rest % 60 else "")


def _encode_objects(values: np.ndarray, name: str, label: str, as_strings: bool) -> list:
    """An object column, value by value (strings pass through untouched)."""
    out = values.tolist()
    if all(type(v) is str for v in out):
        return out
    for row, v in enumerate(out):
        if type(v) is str:
            continue
        out[row] = _encode_value(v, name, label, row, as_strings)
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
    if isinstance(v, (float, np.floating, decimal.Decimal)):
        if isinstance(v, decimal.Decimal):
            if v.is_nan():
                return None
            if not v.is_finite():
                raise _bad(label, name, row, f"{v} is not allowed (JSON has no infinity)")
            return str(v) if as_strings else float(v)
        if math.isnan(v):
            return None
        if math.isinf(v):
            raise _bad(label, name, row, f"{v} is not allowed (JSON has no infinity)")
        return (repr(float(v)) if isinstance(v, float) or np.dtype(type(v)).itemsize >= 8 else str(v)) \
            if as_strings else (float(v) if not isinstance(v, np.floating) or v.dtype.itemsize >= 8
                                else float(str(v)))
    if isinstance(v, (pd.Timestamp, _dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, (pd.Timedelta, _dt.timedelta, np.timedelta64)):
        return pd.Timedelta(v).isoformat()
    if isinstance(v, np.datetime64):
        return None if np.isnat(v) else pd.Timestamp(v).isoformat()
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
        Sent as ``GlobalParameters`` (``{}`` when omitted).
    numbers_as_strings : bool
        Send numbers and booleans as strings (``"5"``, ``"True"``), as Studio's samples do.
        Default: JSON numbers and booleans.
    index : bool
        Send the index as leading column(s) (``reset_index()``); default: not sent.

    Missing values (NaN, None, NA, NaT) are sent as ``null``; datetimes as ISO 8601 text
    (a tz-aware value keeps its offset). Column and row order are kept.

    Raises
    ------
    PayloadError
        For duplicate column names, non-string names that collide once stringified, an
        infinity, or a nested value (dict/list/set/tuple) or bytes in a cell; the message
        names the input, the column and the first bad row.

    Examples
    --------
    >>> df = pd.DataFrame({"Col2": ["This is a good day"]})
    >>> to_payload(df)
    {'Inputs': {'input1': {'ColumnNames': ['Col2'], 'Values': [['This is a good day']]}}, 'GlobalParameters': {}}
    >>> to_payload(df, format="swagger")
    {'Inputs': {'input1': [{'Col2': 'This is a good day'}]}, 'GlobalParameters': {}}
    """
    _check_format(format)
    frames = _frames(data, input_name, "input")
    inputs: dict[str, Any] = {}
    with _no_gc():
        for name, df in frames.items():
            label = f"input {name!r}"
            names, columns = _encode_frame(df, label, as_strings=numbers_as_strings, index=index)
            inputs[name] = _shape(names, columns, len(df), format)
    return {"Inputs": inputs, "GlobalParameters": dict(global_parameters or {})}


def _shape(names: list[str], columns: list[list], nrows: int, format: str) -> Any:
    if format == "swagger":
        return [dict(zip(names, row)) for row in zip(*columns)] if columns else [{} for _ in range(nrows)]
    rows = list(map(list, zip(*columns))) if columns else [[] for _ in range(nrows)]
    return {"ColumnNames": names, "Values": rows}


def to_response(outputs: pd.DataFrame | Mapping[str, pd.DataFrame], *, format: str = "classic",
                details: bool = True, output_name: str = "output1") -> dict:
    """Build a web service's response body, the way Studio does (server side).

    Every value is a string (missing values are ``null``); with ``details=True`` each classic
    output says its ``ColumnTypes`` (from the dtypes, see :func:`column_types`). Without
    details, ``ColumnTypes`` and ``ColumnNames`` are left out, as real services do.

    >>> to_response(pd.DataFrame({"n": [1, 2], "x": [0.5, None]}))["Results"]["output1"]
    {'type': 'table', 'value': {'ColumnNames': ['n', 'x'], 'ColumnTypes': ['Int64', 'Double'], 'Values': [['1', '0.5'], ['2', None]]}}
    >>> to_response(pd.DataFrame({"n": [1]}), format="swagger")
    {'Results': {'output1': [{'n': '1'}]}}
    """
    _check_format(format)
    frames = _frames(outputs, output_name, "output")
    results: dict[str, Any] = {}
    with _no_gc():
        for name, df in frames.items():
            label = f"output {name!r}"
            names, columns = _encode_frame(df, label, as_strings=True, index=False)
            columns = [[None if v is None else v if type(v) is str else str(v) for v in col]
                       if any(v is not None and type(v) is not str for v in col) else col
                       for col in columns]
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


# --------------------------------------------------------------------------- decoding

def _as_obj(body: Any, what: str) -> Any:
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        return loads(body)
    return body


def _missing_mask(arr: np.ndarray) -> np.ndarray:
    if not len(arr):
        return np.zeros(0, dtype=bool)
    return np.fromiter((v is None or v == "" for v in arr), dtype=bool, count=len(arr))


def _parse_error(label: str, column: str, row: int, value: Any, ctype: str) -> PayloadError:
    return PayloadError(f"{_where(label)}column {column!r}, row {row}: {value!r} does not parse as {ctype}",
                        column=column, row=row)


def _first_bad(arr: np.ndarray, miss: np.ndarray, ok: Any) -> int:
    for row, v in enumerate(arr):
        if not miss[row] and not ok(v):
            return row
    return -1


def _int_ok(v: Any) -> bool:
    """Whether *v* reads as a 64-bit integer (an integral float such as 3.0 counts)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, float):
        if not v.is_integer():
            return False
    try:
        n = int(v)
    except (TypeError, ValueError, OverflowError):
        return False
    return -2**63 <= n < 2**63


def _float_ok(v: Any) -> bool:
    if isinstance(v, bool):
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


def _parse_column(values: Sequence[Any], ctype: str, column: str, label: str) -> Any:
    """Read one column's wire values (strings, numbers, null) as *ctype*; missing -> NA."""
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    miss = _missing_mask(arr)
    present = arr[~miss]
    any_missing = bool(miss.any())
    if ctype in ("Int32", "Int64"):
        bits = np.int32 if ctype == "Int32" else np.int64
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
        if not any_missing:
            return ints.astype(bits)
        out = pd.array(np.zeros(len(arr), dtype=bits), dtype=ctype)
        out[~miss] = ints.astype(bits)
        out[miss] = pd.NA
        return out
    if ctype in ("Double", "Single", "Numeric"):
        bits = np.float32 if ctype == "Single" else np.float64
        try:
            floats = np.array([float(v) for v in present], dtype=np.float64) if len(present) \
                else np.zeros(0, np.float64)
            if any(type(v) is bool for v in present):
                raise ValueError
        except (TypeError, ValueError):
            bad = _first_bad(arr, miss, _float_ok)
            raise _parse_error(label, column, bad, arr[bad], ctype) from None
        out = np.full(len(arr), np.nan, dtype=np.float64)
        out[~miss] = floats
        return out.astype(bits)
    if ctype == "Boolean":
        flags = [_bool_value(v) for v in present]
        if any(f is None for f in flags):
            bad = _first_bad(arr, miss, lambda v: _bool_value(v) is not None)
            raise _parse_error(label, column, bad, arr[bad], ctype)
        if not any_missing:
            return np.array(flags, dtype=bool)
        out = pd.array([None] * len(arr), dtype="boolean")
        out[~miss] = np.array(flags, dtype=bool)
        return out
    if ctype == "DateTime":
        return _parse_datetimes(arr, miss, column, label)
    # String
    if not all(type(v) is str for v in present):
        arr = arr.copy()
        for row in np.flatnonzero(~miss):
            v = arr[row]
            if type(v) is not str:
                if isinstance(v, _NESTED):
                    raise PayloadError(f"{_where(label)}column {column!r}, row {row}: a {type(v).__name__} "
                                       "cannot be a cell value", column=column, row=int(row))
                arr[row] = _text(v)
    arr[miss & np.array([v is None for v in arr], dtype=bool)] = None
    return pd.array(arr, dtype=_STR_DTYPE) if _STR_DTYPE != object else arr


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _parse_datetimes(arr: np.ndarray, miss: np.ndarray, column: str, label: str) -> Any:
    present = arr[~miss]
    if not len(present):
        return np.full(len(arr), np.datetime64("NaT"), dtype="datetime64[ns]") if len(arr) \
            else np.zeros(0, dtype="datetime64[ns]")
    if not all(type(v) is str for v in present):
        bad = _first_bad(arr, miss, lambda v: type(v) is str)
        raise _parse_error(label, column, bad, arr[bad], "DateTime")
    texts = pd.Series(arr, dtype=object).where(~miss, None)
    try:
        parsed = pd.to_datetime(texts, format="ISO8601")
    except (ValueError, TypeError, OverflowError) as err:
        if "mixed" in str(err).lower() or "offset" in str(err).lower() or "tz" in str(err).lower():
            try:
                return pd.to_datetime(texts, format="ISO8601", utc=True).array
            except (ValueError, TypeError, OverflowError):
                pass
        for row in np.flatnonzero(~miss):
            try:
                pd.to_datetime(arr[row], format="ISO8601")
            except (ValueError, TypeError, OverflowError):
                raise _parse_error(label, column, int(row), arr[row], "DateTime") from None
        return pd.to_datetime(texts, format="ISO8601", utc=True).array
    return parsed.array


def read_values(columns: Sequence[str], types: Sequence[str] | None, values: Sequence[Sequence[Any]],
                *, label: str = "") -> pd.DataFrame:
    """Read classic ``Values`` rows into a typed DataFrame.

    Parameters
    ----------
    columns : sequence of str
        The column names.
    types : sequence of str or None
        One AzureML ColumnType per column (``"Int32"``, ``"Double"``, ...); None infers each
        column from its JSON values (numbers, booleans, strings).
    values : sequence of rows
        Each row holds one value per column: a string, a JSON number or boolean, or null.
    label : str
        Names the input/output in error messages, e.g. ``"input 'input1'"``.

    Raises
    ------
    PayloadError
        Ragged rows, a row width different from the number of columns, or a value that does
        not parse as its ColumnType; the message names the column and the first bad row.

    >>> read_values(["n", "x"], ["Int32", "Double"], [["1", "0.5"], ["2", ""]]).dtypes.tolist()
    [dtype('int32'), dtype('float64')]
    """
    columns = [str(c) for c in columns]
    if types is not None and len(types) != len(columns):
        raise PayloadError(f"{_where(label)}{len(columns)} column names but {len(types)} ColumnTypes")
    if not isinstance(values, (list, tuple)):
        raise PayloadError(f"{_where(label)}Values must be a list of rows, got {type(values).__name__}")
    width = len(columns)
    with _no_gc():
        if values:
            for row, r in enumerate(values):
                if not isinstance(r, (list, tuple)):
                    raise PayloadError(f"{_where(label)}row {row} is a {type(r).__name__}, expected a list",
                                       row=row)
            lengths = set(map(len, values))
            if len(lengths) > 1 or width not in lengths:
                if len(values[0]) != width:
                    raise PayloadError(f"{_where(label)}ColumnNames/Values width mismatch: {width} ColumnNames "
                                       f"but row 0 has {len(values[0])} values", row=0)
                row = next(i for i, r in enumerate(values) if len(r) != width)
                raise PayloadError(f"{_where(label)}ragged Values: row {row} has {len(values[row])} values, "
                                   f"expected {width}", row=row)
        cols = list(zip(*values)) if values and width else [() for _ in columns]
        data = {}
        for i, name in enumerate(columns):
            ctype = (_ctype(types[i], _where(label), name) if types is not None
                     else _infer_type(cols[i]))
            data[name] = _parse_column(cols[i], ctype, name, label)
        return _frame(data, columns, len(values))


def _frame(data: dict[str, Any], columns: list[str], nrows: int) -> pd.DataFrame:
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise PayloadError(f"duplicate column name {dup!r}", column=dup)
    df = pd.DataFrame(data, columns=columns, copy=False) if columns else pd.DataFrame(index=range(nrows))
    return df


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


def _inputs_of(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping) or key not in payload:
        raise PayloadError(f"expected a JSON object with {key!r}, got "
                           f"{sorted(payload)[:5] if isinstance(payload, Mapping) else type(payload).__name__}")
    section = payload[key]
    if not isinstance(section, Mapping) or not section:
        raise PayloadError(f"{key!r} must be a non-empty object of name -> table")
    return section


def _read_table(name: str, table: Any, kind: str, format: str | None, types_by_col: dict[str, str] | None,
                column_types_given: Sequence[str] | None = None) -> pd.DataFrame:
    label = f"{kind} {name!r}"
    if isinstance(table, list):  # swagger records
        if format == "classic":
            raise PayloadError(f"{label}: expected classic ColumnNames/Values, got swagger records")
        return _read_records(table, label, types_by_col)
    if isinstance(table, Mapping):
        if format == "swagger":
            raise PayloadError(f"{label}: expected swagger records, got a classic table")
        if "Values" not in table:
            raise PayloadError(f"{label}: no 'Values' in the table")
        values = table["Values"]
        names = table.get("ColumnNames")
        ctypes = table.get("ColumnTypes", column_types_given)
        if names is None:
            if types_by_col is not None:
                names = list(types_by_col)
            else:
                width = len(values[0]) if values else 0
                names = [f"Col{i + 1}" for i in range(width)]
        if ctypes is None and types_by_col is not None:
            ctypes = [types_by_col.get(str(n), "String") for n in names]
        if not isinstance(names, list):
            raise PayloadError(f"{label}: ColumnNames must be a list")
        return read_values(names, ctypes, values, label=label)
    raise PayloadError(f"{label}: expected a table or a list of records, got {type(table).__name__}")


def _read_records(records: list, label: str, types_by_col: dict[str, str] | None) -> pd.DataFrame:
    names: dict[str, None] = dict.fromkeys(types_by_col) if types_by_col else {}
    for row, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise PayloadError(f"{label}: record {row} is a {type(rec).__name__}, expected an object", row=row)
        if row == 0 or len(rec) != len(names) or not rec.keys() <= names.keys():
            names.update(dict.fromkeys(rec))
    cols = list(names)
    values = [[rec.get(c) for c in cols] for rec in records]
    ctypes = [types_by_col.get(c, "String") for c in cols] if types_by_col else None
    return read_values(cols, ctypes, values, label=label)


def from_payload(payload: Any, *, format: str | None = None,
                 schema: Mapping[str, Any] | None = None) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Read a request body back into DataFrames (the inverse of :func:`to_payload`).

    Parameters
    ----------
    payload : dict, bytes or str
        ``{"Inputs": {...}, "GlobalParameters": {...}}`` in classic or swagger format.
    format : {"classic", "swagger"}, optional
        Insist on one format; by default each input's shape says which.
    schema : mapping, optional
        The service's swagger.json (or its ``definitions``): each input is read against
        ``{input}Item``'s types, so strings such as ``"5"`` become numbers; a value that
        does not parse raises :class:`PayloadError` naming the column and row. Without a
        schema, JSON numbers and booleans become numeric and boolean columns and strings
        stay strings.

    Returns
    -------
    DataFrame, or a dict of name -> DataFrame when there are several inputs.
    ``GlobalParameters`` is left in the body for the caller.

    >>> from_payload({"Inputs": {"input1": {"ColumnNames": ["n"], "Values": [[1], [None]]}}})["n"].dtype
    Int64Dtype()
    """
    if format is not None:
        _check_format(format)
    body = _as_obj(payload, "request")
    inputs = _inputs_of(body, "Inputs")
    out = {}
    for name, table in inputs.items():
        types = schema_types(schema, name) if schema is not None else None
        out[name] = _read_table(name, table, "input", format, types)
    return out if len(out) > 1 else next(iter(out.values()))


def from_response(body: Any, *, schema: Mapping[str, Any] | None = None) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Read a web service's response body into typed DataFrames.

    Parameters
    ----------
    body : bytes, str or dict
        ``{"Results": {"output1": {"type": "table" | "DataTable", "value": {...}}}}`` or the
        swagger form ``{"Results": {"output1": [{...}, ...]}}``.
    schema : mapping, optional
        The service's swagger.json (or its ``definitions``). Used when a response has no
        ``ColumnTypes`` or no ``ColumnNames`` (``output1Item`` gives the names and types),
        and for swagger-format responses. Without either, columns are named ``Col1..ColN``
        and kept as strings.

    Every value may be a string; ``ColumnTypes`` says how to read it: Int32/Int64 (nullable
    ``Int32``/``Int64`` when there are gaps), Double/Numeric (float64), Single (float32),
    Boolean (nullable ``boolean`` with gaps), DateTime, String. Empty strings and nulls are
    missing values; unknown type names are read as strings with a warning.

    Returns
    -------
    DataFrame, or a dict of name -> DataFrame when there are several outputs.

    >>> body = {"Results": {"output1": {"type": "table", "value": {"ColumnNames": ["n"],
    ...     "ColumnTypes": ["Int32"], "Values": [["1"], ["2"]]}}}}
    >>> from_response(body)["n"].tolist()
    [1, 2]
    """
    obj = _as_obj(body, "response")
    results = _inputs_of(obj, "Results")
    out = {}
    for name, table in results.items():
        types = schema_types(schema, name) if schema is not None else None
        if isinstance(table, Mapping) and "value" in table and isinstance(table["value"], Mapping):
            kind = table.get("type")
            if kind not in (None, "table", "DataTable"):
                log.warning("output %r has type %r, read as a table", name, kind)
            table = table["value"]
        out[name] = _read_table(name, table, "output", None, types)
    return out if len(out) > 1 else next(iter(out.values()))
