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
