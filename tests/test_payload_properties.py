"""Property tests (hypothesis) for azml_nb.payload round trips.

Every property runs twice: on the dict (the plain reader) and on the encoded bytes with the
vectorised reader switched on for bodies of any size, so both readers are held to the same
answers.
"""
from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azml_nb import payload as P
from azml_nb.errors import PayloadError

SETTINGS = settings(max_examples=int(__import__("os").environ.get("AZML_HYPOTHESIS_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

KINDS = ["int64", "float64", "str", "bool", "datetime", "datetime_tz", "Int64", "Float64",
         "boolean", "string", "category", "object_str", "float32", "int32"]

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12) | \
    st.sampled_from(["", "null", "a,b", "[x]", '"q"', "back\\slash", "é ő ✓ 🙂", "\x00\x00", "1.5", "True"])
finite = st.floats(allow_nan=False, allow_infinity=False)
instants = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 12, 31))


@st.composite
def column(draw, kind: str, n: int) -> pd.Series:
    def maybe(strategy):  # a value or missing
        return draw(st.lists(st.none() | strategy, min_size=n, max_size=n))

    if kind == "int64":
        return pd.Series(draw(st.lists(st.integers(-2**63, 2**63 - 1), min_size=n, max_size=n)), dtype="int64")
    if kind == "int32":
        return pd.Series(draw(st.lists(st.integers(-2**31, 2**31 - 1), min_size=n, max_size=n)), dtype="int32")
    if kind == "float64":
        return pd.Series([np.nan if v is None else v for v in maybe(finite)], dtype="float64")
    if kind == "float32":
        return pd.Series(draw(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False),
                                       min_size=n, max_size=n)), dtype="float32")
    if kind == "str":
        return pd.Series(maybe(texts), dtype="str")
    if kind == "object_str":
        return pd.Series(maybe(texts), dtype=object)
    if kind == "string":
        return pd.Series(maybe(texts), dtype="string")
    if kind == "category":
        return pd.Series(maybe(st.sampled_from(["lo", "mid", "hi", "é"])), dtype="category")
    if kind == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if kind == "boolean":
        return pd.Series(maybe(st.booleans()), dtype="boolean")
    if kind == "Int64":
        return pd.Series(maybe(st.integers(-2**63, 2**63 - 1)), dtype="Int64")
    if kind == "Float64":
        return pd.Series(maybe(finite), dtype="Float64")
    if kind == "datetime":
        return pd.Series(pd.to_datetime(maybe(instants)), dtype="datetime64[us]")
    if kind == "datetime_tz":
        tz = draw(st.sampled_from(["UTC", "Europe/Budapest", "America/St_Johns"]))
        return pd.Series(pd.to_datetime(maybe(instants)), dtype="datetime64[us]").dt.tz_localize(
            tz, nonexistent="shift_forward", ambiguous="NaT")
    raise AssertionError(kind)


@st.composite
def frames(draw, kinds=KINDS) -> pd.DataFrame:
    n = draw(st.integers(0, 12))
    chosen = draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=5))
    names = draw(st.lists(texts.filter(lambda s: s != ""), min_size=len(chosen), max_size=len(chosen),
                          unique=True))
    return pd.DataFrame({name: draw(column(kind, n)) for name, kind in zip(names, chosen)})


@pytest.fixture(params=["dict", "bytes"])
def reader(request, monkeypatch):
    """Read a body either as a dict or as its encoded bytes through the vectorised reader."""
    if request.param == "bytes":
        monkeypatch.setattr(P, "_FAST_MIN_BYTES", 0)
        return lambda body, fn, **kw: fn(P.dumps(body), **kw)
    return lambda body, fn, **kw: fn(P.loads(P.dumps(body)), **kw)


def _values(s: pd.Series) -> list:
    """Comparable values: missing as None, datetimes as UTC instants (or naive)."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    if s.dtype.kind == "M":
        return [None if pd.isna(v) else pd.Timestamp(v).as_unit("us") for v in s]
    return [None if pd.isna(v) else (float(v) if isinstance(v, (float, np.floating)) else v)
            for v in s.astype(object)]


def _json_kind(original: pd.Series) -> str:
    """What a request column can come back as without a schema: JSON carries numbers,
    booleans and text, and nullability only where there are gaps."""
    kind = original.dtype.kind if not isinstance(original.dtype, pd.CategoricalDtype) else "O"
    return {"i": "i", "u": "i", "f": "f", "b": "b"}.get(kind, "O")


def _expect_text(s: pd.Series) -> list:
    if isinstance(s.dtype, pd.DatetimeTZDtype) or s.dtype.kind == "M":
        return _values(s)
    return _values(s)


@SETTINGS
@given(df=frames(), fmt=st.sampled_from(["classic", "swagger"]))
def test_request_round_trip(reader, df, fmt):
    back = reader(P.to_payload(df, format=fmt), P.from_payload, format=fmt)
    if fmt == "swagger" and len(df) == 0:   # no records, so no column names on the wire
        assert back.shape == (0, 0)
        return
    assert list(back.columns) == list(df.columns)
    assert len(back) == len(df)
    for name in df.columns:
        original, got = df[name], back[name]
        if original.isna().all():
            assert got.isna().all()
            continue
        kind = _json_kind(original)
        if kind == "O":   # text; datetimes come back as ISO 8601 text
            if original.dtype.kind == "M" or isinstance(original.dtype, pd.DatetimeTZDtype):
                parsed = pd.to_datetime(got, format="ISO8601", utc=True)
                assert _values(parsed) == _values(original)
            else:
                assert got.dtype == P._STR_DTYPE
                assert _values(got) == _values(original.astype(object))
            continue
        assert got.dtype.kind == kind, (name, got.dtype, original.dtype)
        if original.isna().any():
            assert got.isna().tolist() == original.isna().tolist()
        if kind == "f" and original.dtype.itemsize == 4:
            assert got.astype("float32").tolist() == pytest.approx(original.tolist(), nan_ok=True)
        else:
            assert _values(got) == _values(original)


def _schema(df: pd.DataFrame, name: str) -> dict:
    return {"swagger": "2.0", "definitions": {f"{name}Item": {"type": "object",
                                                              "properties": P.swagger_properties(df)}}}


@SETTINGS
@given(df=frames(), as_strings=st.booleans(), fmt=st.sampled_from(["classic", "swagger"]))
def test_request_read_against_schema_is_typed(reader, df, as_strings, fmt):
    """What the local host does: the request read against the service's swagger schema."""
    body = P.to_payload(df, numbers_as_strings=as_strings, format=fmt)
    back = reader(body, P.from_payload, schema=_schema(df, "input1"))
    _assert_typed_like(back, df, empty_is_missing=False)


@SETTINGS
@given(df=frames(), fmt=st.sampled_from(["classic", "swagger"]))
def test_service_response_reads_back_typed(reader, df, fmt):
    """A response built as the service builds it (all strings, ColumnTypes) reads back typed."""
    body = P.to_response(df, format=fmt)
    if fmt == "classic":
        value = body["Results"]["output1"]["value"]
        assert all(type(v) is str for row in value["Values"] for v in row)
        back = reader(body, P.from_response)
    else:
        back = reader(body, P.from_response, schema=_schema(df, "output1"))
    if fmt == "swagger" and len(df) == 0:
        assert list(back.columns) == list(df.columns)   # names from the schema
    _assert_typed_like(back, df, empty_is_missing=True)


def _assert_typed_like(back: pd.DataFrame, df: pd.DataFrame, *, empty_is_missing: bool) -> None:
    assert list(back.columns) == list(df.columns)
    assert len(back) == len(df)
    for name in df.columns:
        original, got = df[name], back[name]
        ctype = P._column_type(original.dtype)
        expected_kind = {"Int32": "i", "Int64": "i", "Double": "f", "Single": "f", "Boolean": "b",
                         "DateTime": "M", "String": "O"}[ctype]
        got_kind = got.dtype.kind if not isinstance(got.dtype, pd.DatetimeTZDtype) else "M"
        if expected_kind == "O":
            assert got.dtype == P._STR_DTYPE
            want = [None if v is None or (empty_is_missing and v == "") else v
                    for v in _values(original.astype(object))]
            assert _values(got) == want
            continue
        assert got_kind == expected_kind, (name, got.dtype, original.dtype)
        if expected_kind == "i":
            width = 4 if ctype == "Int32" else 8
            assert got.dtype.itemsize == width if not hasattr(got.dtype, "numpy_dtype") \
                else got.dtype.numpy_dtype.itemsize == width
        if ctype == "Single":
            assert got.dtype == np.float32
            assert got.tolist() == original.astype("float32").tolist()
            continue
        assert _values(got) == _values(original)


@SETTINGS
@given(df=frames(kinds=["int64", "float64", "str", "bool", "datetime"]))
def test_to_payload_bytes_equal_stdlib_json(df):
    """The body dumps writes is the strict JSON the standard library writes."""
    import json

    body = P.to_payload(df)
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    assert P.loads(P.dumps(body)) == json.loads(text)


def test_empty_frames_round_trip_typed(reader):
    df = pd.DataFrame({"i": pd.Series([], dtype="int64"), "f": pd.Series([], dtype="float64"),
                       "s": pd.Series([], dtype="str"), "b": pd.Series([], dtype=bool),
                       "d": pd.Series([], dtype="datetime64[us]")})
    body = P.to_payload(df)
    assert body["Inputs"]["input1"] == {"ColumnNames": ["i", "f", "s", "b", "d"], "Values": []}
    back = reader(P.to_response(df), P.from_response)
    assert back.dtypes.astype(str).tolist() == ["int64", "float64", "str", "bool", "datetime64[ns]"] or \
        back.dtypes.astype(str).tolist()[:4] == ["int64", "float64", "str", "bool"]
    assert back["d"].dtype.kind == "M" and len(back) == 0
    typed = reader(body, P.from_payload, schema=_schema(df, "input1"))
    assert typed.dtypes.astype(str).tolist()[:4] == ["int64", "float64", "str", "bool"]


wire_values = st.none() | st.text(alphabet="0123456789.-+eE, xtrufalsTRUEFALS:TZ\"\\é\n[]{}\x00", max_size=8) | \
    st.integers(-2**70, 2**70) | finite | st.booleans() | \
    st.sampled_from(["2024-02-29T10:00:00", "2024-02-30T10:00:00", "1e400", "NaN", "01", " 5", "true"])


@SETTINGS
@given(ctypes=st.lists(st.sampled_from(P.COLUMN_TYPES), min_size=1, max_size=3), data=st.data())
def test_vectorised_reader_agrees_with_plain_reader(monkeypatch, ctypes, data):
    """Same frame or same error from the raw bytes (vectorised reader) as from the dict."""
    monkeypatch.setattr(P, "_FAST_MIN_BYTES", 0)
    n = data.draw(st.integers(1, 6))
    rows = [[data.draw(wire_values) for _ in ctypes] for _ in range(n)]
    names = [f"c{i}" for i in range(len(ctypes))]
    for body in (
        {"Results": {"output1": {"type": "table", "value": {"ColumnNames": names, "ColumnTypes": ctypes,
                                                            "Values": rows}}}},
        {"Inputs": {"input1": {"ColumnNames": names, "Values": rows}}},
    ):
        read = P.from_response if "Results" in body else P.from_payload
        raw = P.dumps(body)
        try:
            expected = read(P.loads(raw))
        except PayloadError as err:
            with pytest.raises(PayloadError) as got:
                read(raw)
            assert str(got.value) == str(err)
            continue
        pd.testing.assert_frame_equal(read(raw), expected)


def test_vectorised_reader_is_used_for_ordinary_bodies(monkeypatch):
    """Guard against the fast path silently declining: typical bodies never reach the plain reader."""
    monkeypatch.setattr(P, "_FAST_MIN_BYTES", 0)
    plain = []
    real_loads = P.loads
    monkeypatch.setattr(P, "loads", lambda data: plain.append(len(data)) or real_loads(data))
    n = 50
    df = pd.DataFrame({
        "i": np.arange(n), "f": np.where(np.arange(n) % 3, 0.25, np.nan), "s": [f"t, [{i}] \"q\"" for i in range(n)],
        "b": np.arange(n) % 2 == 0, "d": pd.date_range("2024-01-01", periods=n, freq="h"),
        "I": pd.array([None if i % 4 == 0 else i for i in range(n)], dtype="Int64"),
    })
    bodies = [(P.from_response, P.dumps(P.to_response(df)), {}),
              (P.from_payload, P.dumps(P.to_payload(df)), {}),
              (P.from_payload, P.dumps(P.to_payload(df, numbers_as_strings=True)), {"schema": _schema(df, "input1")})]
    for read, raw, kw in bodies:
        plain.clear()
        read(raw, **kw)
        # loads only saw the skeleton (names, types) and short escaped strings, never the rows
        assert plain and max(plain) < 300 < len(raw)


def test_mutated_bodies_get_the_same_answer_from_both_readers(monkeypatch):
    """Fuzz: bodies with a few bytes changed, dropped or added. The vectorised reader must
    refuse what is not JSON, and otherwise agree with the plain reader on the frame or the error."""
    import json
    import random

    monkeypatch.setattr(P, "_FAST_MIN_BYTES", 0)
    rng = random.Random(0)
    df = pd.DataFrame({"i": pd.array([1, 2, 3, None], dtype="Int64"), "f": [0.5, None, 1e10, -2.0],
                       "s": ["a,b", None, 'x"y', ""], "b": pd.array([True, False, None, True], dtype="boolean"),
                       "d": pd.to_datetime(["2024-01-01", None, "2024-02-02 10:00", "2024-03-03"], format="ISO8601")})
    bases = [P.dumps(P.to_response(df)), P.dumps(P.to_payload(df)), P.dumps(P.to_payload(df, numbers_as_strings=True)),
             P.dumps(P.to_response({"output1": df, "output2": df[["s"]]}))]
    alphabet = b'[]{},:"\\ 0123456789.-enulltrfasTZx'

    def answer(read, body):
        try:
            out = read(body)
        except PayloadError as err:
            return "error", str(err)
        return "frame", out if isinstance(out, dict) else {"": out}

    for _ in range(400):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data))
            what = rng.random()
            if what < 0.4:
                data[at] = rng.choice(alphabet)
            elif what < 0.7:
                del data[at]
            else:
                data.insert(at, rng.choice(alphabet))
        raw = bytes(data)
        read = P.from_response if raw.startswith(b'{"Results"') else P.from_payload
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast = answer(read, raw)
            try:
                parsed = json.loads(raw)
            except ValueError:
                assert fast[0] == "error", raw
                continue
            plain = answer(read, parsed)
        assert fast[0] == plain[0], raw
        if fast[0] == "error":
            assert fast[1] == plain[1]
        else:
            assert list(fast[1]) == list(plain[1])
            for name in fast[1]:
                pd.testing.assert_frame_equal(fast[1][name], plain[1][name])
