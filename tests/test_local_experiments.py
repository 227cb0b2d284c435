"""Experiments as code: modules, the seed's experiment, schema coercion, GlobalParameters."""
from __future__ import annotations

import pandas as pd
import pytest

from azml_nb.errors import PayloadError, SchemaError
from azml_nb.hashing import feature_hashing
from azml_nb.local.experiments import (Experiment, FeatureHashing, ModuleError, PythonScript, SelectColumns,
                                       coerce_to_schema, simple_feature_hashing_experiment)


def test_seed_experiment_runs_over_the_dataset_like_studios_run_button():
    exp = simple_feature_hashing_experiment()
    out = exp.run(pd.DataFrame({"Col1": [5, 1], "Col2": ["This is a good day", "bad"]}))
    assert out.columns.tolist() == ["Col2"] + [f"Col2_HashingFeature.{i}" for i in range(8)]
    assert out.iloc[0, 1:].tolist() == [1, 1, 2, 2, 0, 2, 0, 1]
    assert exp.input_schema == {"Col2": "String"}
    assert exp.default_parameters() == {"Hashing bitsize": 3, "N-grams": 2}


def test_global_parameters_set_module_parameters_without_changing_the_experiment():
    exp = simple_feature_hashing_experiment()
    df = pd.DataFrame({"Col2": ["This is a good day"]})
    out = exp.run(df, {"Hashing bitsize": "5", "N-grams": 1, "Something else": "ignored"})
    pd.testing.assert_frame_equal(out, feature_hashing(df, ["Col2"], bitsize=5, ngrams=1))
    assert exp.default_parameters() == {"Hashing bitsize": 3, "N-grams": 2}
    with pytest.raises(PayloadError, match="Hashing bitsize"):
        exp.run(df, {"Hashing bitsize": "3.5"})


def test_module_failures_name_the_module():
    with pytest.raises(ModuleError, match="Select Columns in Dataset.*Col9"):
        SelectColumns(["Col9"]).run(pd.DataFrame({"Col2": ["a"]}))
    with pytest.raises(ModuleError, match="Feature Hashing.*1..31"):
        FeatureHashing(["Col2"], bitsize=0).run(pd.DataFrame({"Col2": ["a"]}))
    exp = Experiment(name="x", modules=[PythonScript(lambda df: 1 / 0, name="Divide")], input_schema={"a": "Int32"})
    with pytest.raises(ModuleError, match="Divide: ZeroDivisionError"):
        exp.run(pd.DataFrame({"a": [1]}))
    with pytest.raises(ModuleError, match="must return a DataFrame"):
        PythonScript(lambda df: None).run(pd.DataFrame())


def test_experiment_checks_its_declarations():
    with pytest.raises(ValueError, match="unknown column type"):
        Experiment(name="x", modules=[], input_schema={"a": "Float"})
    with pytest.raises(ValueError, match="names module"):
        Experiment(name="x", modules=[], input_schema={"a": "Int32"}, web_parameters={"p": ("Nope", "bitsize")})
    with pytest.raises(ValueError, match="no parameter"):
        Experiment(name="x", modules=[FeatureHashing(["a"])], input_schema={"a": "String"},
                   web_parameters={"p": ("Feature Hashing", "colour")})


def test_coerce_to_schema_types_and_errors():
    df = pd.DataFrame({"n": ["1", " 2", ""], "x": ["0.5", "1e3", "NaN"], "b": ["true", "False", "1"],
                       "t": [1, "a", None], "d": ["2024-01-02", "2024-01-03T04:05:06", ""]})
    out = coerce_to_schema(df, {"n": "Int32", "x": "Double", "b": "Boolean", "t": "String", "d": "DateTime"})
    assert out["n"].tolist()[:2] == [1, 2] and pd.isna(out["n"].iloc[2])
    assert out["x"].iloc[1] == 1000.0 and out["b"].tolist() == [True, False, True]
    assert out["t"].tolist()[:2] == ["1", "a"] and pd.isna(out["t"].iloc[2])
    assert out["d"].iloc[1] == pd.Timestamp("2024-01-03 04:05:06")
    assert str(coerce_to_schema(pd.DataFrame({"n": ["7"]}), {"n": "Int64"})["n"].dtype) == "int64"
    with pytest.raises(PayloadError, match="column 'n' row 1: '1.5' is not a valid Int32") as info:
        coerce_to_schema(pd.DataFrame({"n": ["1", "1.5"]}), {"n": "Int32"})
    assert (info.value.column, info.value.row) == ("n", 1)
    with pytest.raises(PayloadError, match="row 0"):
        coerce_to_schema(pd.DataFrame({"n": ["99999999999"]}), {"n": "Int32"})
    with pytest.raises(PayloadError, match="'maybe' is not a valid Boolean"):
        coerce_to_schema(pd.DataFrame({"b": ["maybe"]}), {"b": "Boolean"})
    with pytest.raises(SchemaError, match="expected 1 column"):
        coerce_to_schema(pd.DataFrame({"a": [1], "b": [2]}), {"a": "Int32"})
    with pytest.raises(SchemaError, match="named 'b', expected 'a'"):
        coerce_to_schema(pd.DataFrame({"b": [2]}), {"a": "Int32"})
