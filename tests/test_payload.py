"""azml_nb.payload: wire shapes asserted against literal JSON, typed reads, bad input."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import azml_nb as az
from azml_nb import payload as P
from azml_nb.errors import PayloadError


def test_classic_request_literal():
    df = pd.DataFrame({"Col2": ["This is a good day"]})
    assert az.to_payload(df) == {
        "Inputs": {"input1": {"ColumnNames": ["Col2"], "Values": [["This is a good day"]]}},
        "GlobalParameters": {},
    }


def test_swagger_request_literal_and_global_parameters():
    df = pd.DataFrame({"Col1": [5, 4], "Col2": ["good", "bad"]})
    body = az.to_payload(df, format="swagger", global_parameters={"bits": np.int64(3)})
    assert json.loads(P.dumps(body)) == {
        "Inputs": {"input1": [{"Col1": 5, "Col2": "good"}, {"Col1": 4, "Col2": "bad"}]},
        "GlobalParameters": {"bits": 3},
    }


def test_numbers_as_strings():
    df = pd.DataFrame({"n": [1, 2], "x": [0.5, np.nan], "b": [True, False]})
    values = az.to_payload(df, numbers_as_strings=True)["Inputs"]["input1"]["Values"]
    assert values == [["1", "0.5", "True"], ["2", None, "False"]]


def test_missing_values_and_datetimes_on_the_wire():
    df = pd.DataFrame({
        "f": [np.nan, 1.5],
        "s": [None, "x"],
        "I": pd.array([pd.NA, 2], dtype="Int64"),
        "d": pd.to_datetime([None, "2024-03-01 12:30"]),
        "tz": pd.to_datetime(["2024-01-01 10:00", None]).tz_localize("Europe/Budapest"),
    })
    values = json.loads(P.dumps(az.to_payload(df)))["Inputs"]["input1"]["Values"]
    assert values == [[None, None, None, None, "2024-01-01T10:00:00+01:00"],
                      [1.5, "x", 2, "2024-03-01T12:30:00", None]]


def test_index_only_when_asked():
    df = pd.DataFrame({"a": [1]}, index=pd.Index(["r1"], name="key"))
    assert az.to_payload(df)["Inputs"]["input1"]["ColumnNames"] == ["a"]
    assert az.to_payload(df, index=True)["Inputs"]["input1"] == {"ColumnNames": ["key", "a"],
                                                                  "Values": [["r1", 1]]}


def test_several_inputs_round_trip():
    a = pd.DataFrame({"x": [1, 2]})
    b = pd.DataFrame({"y": ["u"]})
    back = az.from_payload(az.to_payload({"input1": a, "input2": b}))
    assert list(back) == ["input1", "input2"]
    pd.testing.assert_frame_equal(back["input1"], a)
    assert back["input2"]["y"].tolist() == ["u"]


def test_from_payload_reads_strings_against_schema():
    body = {"Inputs": {"input1": {"ColumnNames": ["Col1", "Col2"], "Values": [["5", "good"], ["", "bad"]]}},
            "GlobalParameters": {}}
    schema = {"definitions": {"input1Item": {"type": "object", "properties": {
        "Col1": {"type": "integer", "format": "int32"}, "Col2": {"type": "string"}}}}}
    df = az.from_payload(body, schema=schema)
    assert df["Col1"].dtype == "Int32"
    assert df["Col1"].tolist()[0] == 5 and df["Col1"].isna().tolist() == [False, True]


def test_response_typed_by_column_types():
    body = {"Results": {"output1": {"type": "DataTable", "value": {
        "ColumnNames": ["i", "l", "d", "s", "b", "t", "n"],
        "ColumnTypes": ["Int32", "Int64", "Double", "String", "Boolean", "DateTime", "Int64"],
        "Values": [["1", "9007199254740993", "0.1", "a", "True", "2024-01-02T03:04:05", ""],
                   ["2", "3", "", None, "false", None, "7"]]}}}}
    df = az.from_response(json.dumps(body).encode())
    assert df.dtypes.astype(str).tolist()[:3] == ["int32", "int64", "float64"]
    assert df["l"].tolist() == [9007199254740993, 3]
    assert df["b"].tolist() == [True, False]
    assert df["n"].dtype == "Int64" and df["n"].isna().tolist() == [True, False]
    assert df["t"].iloc[0] == pd.Timestamp("2024-01-02T03:04:05")


def test_response_round_trip_is_typed():
    df = pd.DataFrame({"n": np.array([1, 2], dtype=np.int32), "x": [0.1, np.nan], "s": ["a", None]})
    back = az.from_response(P.dumps(P.to_response(df)))
    assert back.dtypes.astype(str).tolist() == ["int32", "float64", "str"]
    assert back["x"].iloc[0] == 0.1


def test_duplicate_columns_refused():
    df = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(PayloadError, match="'a'") as err:
        az.to_payload(df)
    assert err.value.column == "a"


def test_infinity_refused_with_column_and_row():
    df = pd.DataFrame({"ok": [1.0, 2.0, 3.0], "x": [1.0, 2.0, np.inf]})
    with pytest.raises(PayloadError, match=r"column 'x', row 2") as err:
        az.to_payload(df)
    assert (err.value.column, err.value.row) == ("x", 2)


def test_bad_value_for_column_type_names_column_and_row():
    body = {"Results": {"output1": {"type": "table", "value": {
        "ColumnNames": ["a"], "ColumnTypes": ["Int32"], "Values": [["1"], ["x"]]}}}}
    with pytest.raises(PayloadError, match=r"column 'a', row 1: 'x' does not parse as Int32"):
        az.from_response(body)


def test_dumps_loads_strict():
    assert P.dumps({"a": float("nan")}) == b'{"a":null}'
    assert P.loads(P.dumps({"é": [1, 2.5, None]})) == {"é": [1, 2.5, None]}
    with pytest.raises(PayloadError):
        P.loads(b'{"a": NaN}')


SWAGGER = {
    "swagger": "2.0",
    "definitions": {
        "output1Item": {"type": "object", "properties": {
            "Col1": {"type": "integer", "format": "int32"},
            "Score": {"type": "number", "format": "double"},
            "Label": {"type": "string"},
            "When": {"type": "string", "format": "date-time"},
            "Ok": {"type": "boolean"},
        }},
    },
}


def test_response_without_column_types_is_typed_from_the_schema():
    body = {"Results": {"output1": {"type": "table", "value": {
        "ColumnNames": ["Col1", "Score", "Label", "When", "Ok"],
        "Values": [["1", "0.5", "a", "2024-01-01T00:00:00", "True"], ["", "", "", "", ""]]}}}}
    plain = az.from_response(body)
    assert all(dtype == P._STR_DTYPE for dtype in plain.dtypes)   # no schema: text
    df = az.from_response(body, schema=SWAGGER)
    assert df.dtypes.astype(str).tolist() == ["Int32", "float64", "str", "datetime64[us]", "boolean"]
    assert df.isna().iloc[1].all()
    # the definitions alone work too
    assert az.from_response(body, schema=SWAGGER["definitions"]).dtypes.equals(df.dtypes)


def test_response_without_column_names():
    body = {"Results": {"output1": {"type": "table", "value": {
        "Values": [["1", "0.5", "a", "2024-01-01T00:00:00", "false"]]}}}}
    df = az.from_response(body, schema=SWAGGER)
    assert list(df.columns) == ["Col1", "Score", "Label", "When", "Ok"]
    assert df["Col1"].dtype == "int32" and not df["Ok"].iloc[0]
    plain = az.from_response(body)
    assert list(plain.columns) == ["Col1", "Col2", "Col3", "Col4", "Col5"]
    assert plain.iloc[0].tolist() == ["1", "0.5", "a", "2024-01-01T00:00:00", "false"]


def test_swagger_response_typed_from_schema():
    body = {"Results": {"output1": [{"Col1": "3", "Score": "1.25", "Label": "x", "When": "2024-01-01T10:00:00+02:00",
                                     "Ok": "True"}]}}
    df = az.from_response(body, schema=SWAGGER)
    assert df["Col1"].tolist() == [3] and df["Score"].tolist() == [1.25]
    assert df["When"].iloc[0] == pd.Timestamp("2024-01-01T08:00:00Z")
    assert str(df["When"].dtype) == "datetime64[us, UTC+02:00]"
    assert az.from_response(body)["Col1"].tolist() == ["3"]   # no schema: text


def test_several_outputs_return_a_dict():
    body = P.to_response({"output1": pd.DataFrame({"a": [1]}), "output2": pd.DataFrame({"b": ["x"]})})
    out = az.from_response(P.dumps(body))
    assert list(out) == ["output1", "output2"]
    assert out["output1"]["a"].dtype == "int64" and out["output2"]["b"].tolist() == ["x"]


def test_empty_response_is_typed():
    body = {"Results": {"output1": {"type": "table", "value": {
        "ColumnNames": ["n", "x", "t"], "ColumnTypes": ["Int32", "Double", "String"], "Values": []}}}}
    df = az.from_response(body)
    assert df.shape == (0, 3) and df.dtypes.astype(str).tolist() == ["int32", "float64", "str"]


def test_details_false_drops_names_and_types():
    df = pd.DataFrame({"n": [1], "t": ["x"]})
    assert P.to_response(df, details=False) == {"Results": {"output1": {"type": "table",
                                                                        "value": {"Values": [["1", "x"]]}}}}


def test_column_types_and_swagger_properties():
    df = pd.DataFrame({
        "i8": np.array([1], dtype=np.int8), "i32": np.array([1], dtype=np.int32), "i64": [1],
        "u32": np.array([1], dtype=np.uint32), "I": pd.array([1], dtype="Int64"),
        "f32": np.array([1], dtype=np.float32), "f": [0.5], "F": pd.array([0.5], dtype="Float64"),
        "b": [True], "B": pd.array([True], dtype="boolean"), "s": ["x"], "S": pd.array(["x"], dtype="string"),
        "c": pd.Categorical(["x"]), "ci": pd.Categorical([1]), "d": pd.to_datetime(["2024-01-01"]),
        "dz": pd.to_datetime(["2024-01-01"]).tz_localize("UTC"), "o": [object()],
    })
    assert P.column_types(df) == ["Int32", "Int32", "Int64", "Int64", "Int64", "Single", "Double", "Double",
                                  "Boolean", "Boolean", "String", "String", "String", "Int64", "DateTime",
                                  "DateTime", "String"]
    props = P.swagger_properties(df)
    assert props["i32"] == {"type": "integer", "format": "int32"}
    assert props["f"] == {"type": "number", "format": "double"}
    assert props["d"] == {"type": "string", "format": "date-time"}
    assert props["b"] == {"type": "boolean"} and props["s"] == {"type": "string"}
    assert P.schema_types({"definitions": {"input1Item": {"properties": props}}}, "input1")["f32"] == "Single"


def test_request_values_sent_as_strings_stay_text_without_a_schema():
    body = {"Inputs": {"input1": {"ColumnNames": ["Col1", "Col2"], "Values": [["5", "good"]]}}}
    df = az.from_payload(body)
    assert df["Col1"].tolist() == ["5"]


def test_numpy_scalars_and_mixed_objects():
    df = pd.DataFrame({"o": pd.Series([np.int32(3), np.float32(0.1), np.bool_(True), None, pd.NA,
                                       pd.Timestamp("2024-01-01 10:00", tz="UTC"), "s"], dtype=object)})
    values = [row[0] for row in az.to_payload(df)["Inputs"]["input1"]["Values"]]
    assert values == [3, 0.1, True, None, None, "2024-01-01T10:00:00+00:00", "s"]
    strings = [row[0] for row in az.to_payload(df, numbers_as_strings=True)["Inputs"]["input1"]["Values"]]
    assert strings == ["3", "0.1", "True", None, None, "2024-01-01T10:00:00+00:00", "s"]


def test_order_is_preserved():
    cols = [f"c{i}" for i in range(30)][::-1]
    df = pd.DataFrame(np.arange(90).reshape(3, 30), columns=cols)
    assert az.from_payload(P.dumps(az.to_payload(df))).equals(df.reset_index(drop=True))
    shuffled = df.sample(frac=1, random_state=0)
    assert az.from_payload(az.to_payload(shuffled))["c0"].tolist() == shuffled["c0"].tolist()


@pytest.mark.parametrize("backend", ["orjson", "stdlib"])
def test_both_json_backends_give_the_same_bytes_and_frames(monkeypatch, backend):
    """orjson is optional: without it the standard library writes and reads the same JSON
    (the same values; orjson spells some exponents differently, 1e-5 for 1e-05)."""
    if backend == "stdlib":
        monkeypatch.setattr(P, "_orjson", None)
    elif P._orjson is None:
        pytest.skip("orjson is not installed")
    n = 40_000   # over the vectorised reader's threshold, and long enough for sliced dumps
    df = pd.DataFrame({"i": np.arange(n), "f": np.linspace(0, 1, n), "s": ["é, \"x\""] * n,
                       "d": pd.date_range("2024-01-01", periods=n, freq="s")})
    body = az.to_payload(df)
    raw = P.dumps(body)
    assert json.loads(raw) == json.loads(json.dumps(body, ensure_ascii=False, separators=(",", ":")))
    assert P.dumps({"x": [1.5, float("nan"), float("inf")]}) == b'{"x":[1.5,null,null]}'
    back = az.from_response(P.dumps(P.to_response(df)))
    assert back["f"].tolist() == df["f"].tolist() and back["d"].equals(df["d"].astype("datetime64[us]"))
    with pytest.raises(PayloadError, match="not valid JSON"):
        P.loads(b"[1, NaN]")
    assert P.loads(b"[-9223372036854775808, 18446744073709551615]") == [-2**63, 2**64 - 1]


def test_global_parameters_become_plain_json():
    params = {"Hashing bitsize": np.int64(3), "N-grams": np.float32(2.0), "when": pd.Timestamp("2024-01-01"),
              "nested": {"a": [np.int8(1)]}}
    body = az.to_payload(pd.DataFrame({"a": [1]}), global_parameters=params)
    assert body["GlobalParameters"] == {"Hashing bitsize": 3, "N-grams": 2.0, "when": "2024-01-01T00:00:00",
                                        "nested": {"a": [1]}}
    assert type(body["GlobalParameters"]["Hashing bitsize"]) is int
    json.dumps(body)   # any encoder can write it


def test_docstring_examples_hold():
    import doctest

    result = doctest.testmod(P, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 10 and result.failed == 0
