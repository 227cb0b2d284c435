"""Every bad input of issue 2 raises PayloadError naming the column and the first bad row.

Wire-side errors are checked through both readers: the dict (plain reader) and the raw
bytes with the vectorised reader switched on for any size, which must hand the case to the
plain reader and so give the same message.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import azml_nb as az
from azml_nb import payload as P
from azml_nb.errors import PayloadError


@pytest.fixture(params=["dict", "bytes"])
def as_body(request, monkeypatch):
    if request.param == "bytes":
        monkeypatch.setattr(P, "_FAST_MIN_BYTES", 0)
        return lambda obj: json.dumps(obj).replace(", ", ",").replace(": ", ":").encode()
    return lambda obj: obj


# --------------------------------------------------------------------------- frames going out

def test_duplicate_column_names():
    df = pd.DataFrame([[1, 2, 3]], columns=["a", "b", "a"])
    for call in (az.to_payload, P.to_response):
        with pytest.raises(PayloadError, match="duplicate column name 'a'") as err:
            call(df)
        assert err.value.column == "a"


def test_non_string_names_that_collide_once_stringified():
    df = pd.DataFrame([[1, 2]], columns=[1, "1"])
    with pytest.raises(PayloadError, match="column names 1 and '1' collide") as err:
        az.to_payload(df)
    assert err.value.column == "1"
    # non-string names that do not collide are sent as text
    assert az.to_payload(pd.DataFrame([[1, 2]], columns=[0, 1]))["Inputs"]["input1"]["ColumnNames"] == ["0", "1"]


@pytest.mark.parametrize("column", [
    pd.Series([1.0, 2.0, np.inf]),
    pd.Series([1.0, 2.0, -np.inf], dtype="float32"),
    pd.Series([1.0, None, np.inf], dtype="Float64"),
    pd.Series([1.0, "x", float("-inf")], dtype=object),
])
def test_infinity(column):
    df = pd.DataFrame({"ok": [1, 2, 3], "x": column})
    with pytest.raises(PayloadError, match=r"input 'input1': column 'x', row 2: -?inf is not allowed") as err:
        az.to_payload(df)
    assert (err.value.column, err.value.row) == ("x", 2)


def test_infinity_in_a_categorical_names_the_row_that_uses_it():
    df = pd.DataFrame({"c": pd.Categorical([1.0, 1.0, np.inf, 1.0])})
    with pytest.raises(PayloadError, match=r"column 'c', row 2") as err:
        az.to_payload(df)
    assert err.value.row == 2


@pytest.mark.parametrize("bad", [{"k": 1}, [1, 2], {1, 2}, (1, 2), b"bytes", bytearray(b"x")])
def test_nested_objects_and_bytes_in_a_cell(bad):
    df = pd.DataFrame({"a": ["x", "y", "z"], "b": pd.Series(["u", "v", "w"], dtype=object)})
    df.at[1, "b"] = bad
    with pytest.raises(PayloadError, match=rf"column 'b', row 1: a {type(bad).__name__} cannot be a cell value") as err:
        az.to_payload(df)
    assert (err.value.column, err.value.row) == ("b", 1)
    with pytest.raises(PayloadError, match="column 'b', row 1"):
        P.to_response(df)


def test_several_inputs_name_the_input():
    good, bad = pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [1.0, np.inf]})
    with pytest.raises(PayloadError, match=r"input 'input2': column 'a', row 1"):
        az.to_payload({"input1": good, "input2": bad})


def test_unknown_format_and_wrong_types():
    df = pd.DataFrame({"a": [1]})
    with pytest.raises(PayloadError, match=r"format='json' is not one of 'classic', 'swagger'"):
        az.to_payload(df, format="json")
    with pytest.raises(PayloadError, match="format='rows'"):
        az.from_payload(az.to_payload(df), format="rows")
    with pytest.raises(PayloadError, match="expected a DataFrame or a mapping"):
        az.to_payload([[1, 2]])
    with pytest.raises(PayloadError, match="input 'x' is a list"):
        az.to_payload({"x": [1]})


# --------------------------------------------------------------------------- bodies coming in

def _response(names, types, values):
    value = {"ColumnNames": names, "Values": values}
    if types is not None:
        value["ColumnTypes"] = types
    return {"Results": {"output1": {"type": "table", "value": value}}}


def test_ragged_values_rows(as_body):
    body = _response(["a", "b"], ["Int32", "String"], [["1", "x"], ["2", "y"], ["3"], ["4", "z"]])
    with pytest.raises(PayloadError, match=r"output 'output1': ragged Values: row 2 has 1 values, expected 2") as err:
        az.from_response(as_body(body))
    assert err.value.row == 2
    request = {"Inputs": {"input1": {"ColumnNames": ["a", "b"], "Values": [[1, 2], [3, 4, 5]]}}}
    with pytest.raises(PayloadError, match=r"input 'input1': ragged Values: row 1 has 3 values"):
        az.from_payload(as_body(request))


def test_column_names_values_width_mismatch(as_body):
    body = _response(["a", "b", "c"], None, [["1", "x"], ["2", "y"]])
    with pytest.raises(PayloadError, match=r"ColumnNames/Values width mismatch: 3 ColumnNames but row 0 has 2"):
        az.from_response(as_body(body))
    with pytest.raises(PayloadError, match=r"3 ColumnNames but 2 ColumnTypes"):
        az.from_response(as_body(_response(["a", "b", "c"], ["Int32", "Int32"], [["1", "2", "3"]])))


@pytest.mark.parametrize("ctype, good, bad", [
    ("Int32", "7", "seven"),
    ("Int32", "7", "3000000000"),   # outside Int32
    ("Int64", "7", "1.5"),
    ("Int64", "7", "99999999999999999999"),
    ("Double", "0.5", "half"),
    ("Single", "0.5", "1,5"),
    ("Numeric", "2", "n/a"),
    ("Boolean", "True", "maybe"),
    ("DateTime", "2024-05-01T10:00:00", "yesterday"),
])
def test_value_that_does_not_parse_as_its_column_type(as_body, ctype, good, bad):
    values = [["a", good], ["b", good], ["c", bad], ["d", good]]
    with pytest.raises(PayloadError, match=rf"column 'v', row 2: '{bad}' does not parse as {ctype}") as err:
        az.from_response(as_body(_response(["k", "v"], ["String", ctype], values)))
    assert (err.value.column, err.value.row) == ("v", 2)


def test_request_value_against_schema(as_body):
    """The host reads requests against its schema; a bad value names column and row."""
    schema = {"definitions": {"input1Item": {"type": "object", "properties": {
        "Col1": {"type": "integer", "format": "int32"}, "Col2": {"type": "string"}}}}}
    body = {"Inputs": {"input1": {"ColumnNames": ["Col1", "Col2"],
                                  "Values": [["5", "fine"], [4, "ok"], ["five", "bad"]]}}, "GlobalParameters": {}}
    with pytest.raises(PayloadError, match=r"input 'input1': column 'Col1', row 2: 'five' does not parse as Int32"):
        az.from_payload(as_body(body), schema=schema)
    with pytest.raises(PayloadError, match=r"column 'Col1', row 1: True does not parse as Int32"):
        P.read_values(["Col1"], ["Int32"], [["1"], [True]])


def test_nested_values_in_a_body(as_body):
    body = {"Inputs": {"input1": {"ColumnNames": ["a"], "Values": [["x"], [["nested"]]]}}}
    with pytest.raises(PayloadError, match=r"column 'a', row 1: a list cannot be a cell value"):
        az.from_payload(as_body(body))


def test_duplicate_names_in_a_body(as_body):
    with pytest.raises(PayloadError, match="duplicate column name 'a'"):
        az.from_response(as_body(_response(["a", "a"], ["Int32", "Int32"], [["1", "2"]])))


def test_invalid_json_and_nan_tokens():
    with pytest.raises(PayloadError, match="not valid JSON"):
        az.from_response(b'{"Results": ')
    with pytest.raises(PayloadError, match="not valid JSON"):
        az.from_payload(b'{"Inputs": {"input1": {"ColumnNames": ["a"], "Values": [[NaN]]}}}')
    with pytest.raises(PayloadError, match="expected a JSON object with 'Results'"):
        az.from_response({"error": {"code": "BadArgument"}})
    with pytest.raises(PayloadError, match="'Inputs' must be a non-empty object"):
        az.from_payload({"Inputs": {}})


def test_unknown_column_type_reads_as_text_with_a_warning(as_body):
    body = _response(["a", "b"], ["Int32", "Decimal128"], [["1", "2.50"]])
    with pytest.warns(UserWarning, match=r"column 'b': unknown ColumnType 'Decimal128', read as strings"):
        df = az.from_response(as_body(body))
    assert df["b"].tolist() == ["2.50"] and df["a"].dtype == "int32"


def test_format_mismatch():
    with pytest.raises(PayloadError, match="expected swagger records, got a classic table"):
        az.from_payload(az.to_payload(pd.DataFrame({"a": [1]})), format="swagger")
    with pytest.raises(PayloadError, match="expected a classic ColumnNames/Values table, got swagger records"):
        az.from_payload(az.to_payload(pd.DataFrame({"a": [1]}), format="swagger"), format="classic")


def test_values_key_inside_a_record_cell_is_not_mistaken_for_a_table(monkeypatch):
    monkeypatch.setattr(P, "_FAST_MIN_BYTES", 0)
    body = {"Inputs": {"input1": [{"a": "x", "b": {"Values": [["1"]]}}]}}
    with pytest.raises(PayloadError, match=r"column 'b', row 0: a dict cannot be a cell value"):
        az.from_payload(json.dumps(body).encode())
    ok = {"Inputs": {"input1": {"ColumnNames": ["a"], "Values": [["1"], ["2"]]}},
          "GlobalParameters": {"Values": [["9"]]}}
    assert az.from_payload(json.dumps(ok).encode())["a"].tolist() == ["1", "2"]
