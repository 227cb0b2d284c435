"""Experiments as code: a named pipeline of modules over DataFrames.

A Studio (classic) experiment was a graph of modules; the ones a web service needs are a
straight line from the web-service input to the output. Here an :class:`Experiment` is that
line: modules that each take a DataFrame and return one, an input schema (the columns and
AzureML column types the web-service input accepts), an example input, and the module
parameters that callers may set through ``GlobalParameters``.

>>> from azml_nb.local.experiments import simple_feature_hashing_experiment
>>> exp = simple_feature_hashing_experiment()
>>> import pandas as pd
>>> out = exp.run(pd.DataFrame({"Col1": [5], "Col2": ["This is a good day"]}))   # doctest: +SKIP
>>> out.iloc[0, 1:].tolist()                                                       # doctest: +SKIP
[1, 1, 2, 2, 0, 2, 0, 1]
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import PayloadError, SchemaError

__all__ = [
    "Module", "SelectColumns", "FeatureHashing", "PythonScript", "Experiment",
    "ModuleError", "simple_feature_hashing_experiment", "coerce_to_schema", "COLUMN_TYPES",
]

#: AzureML column types an input schema may name.
COLUMN_TYPES = ("String", "Int32", "Int64", "Double", "Boolean", "DateTime")


class ModuleError(Exception):
    """A module failed while running; ``module`` names it (the host answers ModuleExecutionError)."""

    def __init__(self, module: str, message: str):
        super().__init__(f"{module}: {message}")
        self.module = module
        self.reason = message


class Module:
    """One step of an experiment: ``run(df) -> df``. Subclasses set ``name`` and ``parameters``.

    ``parameters`` lists the attribute names that ``GlobalParameters`` may set.
    """

    name: str = "Module"
    parameters: tuple[str, ...] = ()

    def run(self, df: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def with_parameters(self, **values: Any) -> "Module":
        """A copy with some parameters changed (the original stays as published)."""
        clone = copy.copy(self)
        for key, value in values.items():
            if key not in self.parameters:
                raise KeyError(f"{self.name} has no parameter {key!r}; it has {list(self.parameters)}")
            setattr(clone, key, value)
        return clone

    def __repr__(self) -> str:
        params = ", ".join(f"{p}={getattr(self, p)!r}" for p in self.parameters)
        return f"{type(self).__name__}({params})"


class SelectColumns(Module):
    """Studio's *Select Columns in Dataset*: keep the named columns, in the given order.

    >>> SelectColumns(["Col2"]).run(pd.DataFrame({"Col1": [1], "Col2": ["a"]})).columns.tolist()
    ['Col2']
    """

    name = "Select Columns in Dataset"
    parameters = ("columns",)

    def __init__(self, columns: Sequence[str]):
        self.columns = list(columns)

    def run(self, df: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise ModuleError(self.name, f"column(s) {missing} not found; the dataset has {list(df.columns)}")
        if list(df.columns) == self.columns:
            return df
        return df[self.columns]


class FeatureHashing(Module):
    """Studio's *Feature Hashing* over text columns (see :func:`azml_nb.feature_hashing`).

    Keeps the input columns and appends ``{col}_HashingFeature.{i}`` counts.
    """

    name = "Feature Hashing"
    parameters = ("bitsize", "ngrams")

    def __init__(self, columns: Sequence[str], *, bitsize: int = 10, ngrams: int = 2):
        self.columns = list(columns)
        self.bitsize = bitsize
        self.ngrams = ngrams

    def run(self, df: pd.DataFrame) -> pd.DataFrame:
        from ..hashing import feature_hashing

        if not isinstance(self.bitsize, (int, np.integer)) or not 1 <= self.bitsize <= 31:
            raise ModuleError(self.name, f"Hashing bitsize must be an integer in 1..31, got {self.bitsize!r}")
        if not isinstance(self.ngrams, (int, np.integer)) or not 0 <= self.ngrams <= 10:
            raise ModuleError(self.name, f"N-grams must be an integer in 0..10, got {self.ngrams!r}")
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise ModuleError(self.name, f"column(s) {missing} not found; the dataset has {list(df.columns)}")
        return feature_hashing(df, self.columns, bitsize=int(self.bitsize), ngrams=int(self.ngrams))


class PythonScript(Module):
    """Studio's *Execute Python Script*: any ``DataFrame -> DataFrame`` function.

    >>> upper = PythonScript(lambda df: df.assign(Col2=df["Col2"].str.upper()), name="Upper")
    >>> upper.run(pd.DataFrame({"Col2": ["a"]}))["Col2"].tolist()
    ['A']
    """

    parameters = ()

    def __init__(self, func: Callable[[pd.DataFrame], pd.DataFrame], *, name: str = "Execute Python Script"):
        self.func = func
        self.name = name

    def run(self, df: pd.DataFrame) -> pd.DataFrame:
        try:
            out = self.func(df)
        except ModuleError:
            raise
        except Exception as err:  # the script's own failure is the caller's information
            raise ModuleError(self.name, f"{type(err).__name__}: {err}") from err
        if not isinstance(out, pd.DataFrame):
            raise ModuleError(self.name, f"the script must return a DataFrame, it returned {type(out).__name__}")
        return out

    def __repr__(self) -> str:
        return f"PythonScript({getattr(self.func, '__name__', 'func')}, name={self.name!r})"


@dataclass
class Experiment:
    """A named pipeline of modules with the schema of its web-service input.

    Parameters
    ----------
    name : str
        Shown in the help page and swagger.json.
    modules : sequence of Module
        Run in order; each receives the previous one's output.
    input_schema : mapping of column name -> AzureML column type
        What the web-service input accepts, in order (``"String"``, ``"Int32"``, ...).
    example : DataFrame, optional
        An example input (the swagger.json example request; the output schema comes from
        running it). Defaults to one row of empty/zero values.
    web_parameters : mapping of name -> (module name, parameter)
        The module parameters callers may set through ``GlobalParameters``.
    description : str
    """

    name: str
    modules: Sequence[Module]
    input_schema: Mapping[str, str]
    example: pd.DataFrame | None = None
    web_parameters: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    description: str = ""
    input_name: str = "input1"
    output_name: str = "output1"

    def __post_init__(self) -> None:
        self.modules = list(self.modules)
        self.input_schema = dict(self.input_schema)
        bad = {c: t for c, t in self.input_schema.items() if t not in COLUMN_TYPES}
        if bad:
            raise ValueError(f"input_schema: unknown column type(s) {bad}; expected one of {COLUMN_TYPES}")
        names = {m.name for m in self.modules}
        for pname, (module, attr) in self.web_parameters.items():
            if module not in names:
                raise ValueError(f"web parameter {pname!r} names module {module!r}; modules are {sorted(names)}")
            mod = next(m for m in self.modules if m.name == module)
            if attr not in mod.parameters:
                raise ValueError(f"web parameter {pname!r}: {module} has no parameter {attr!r}")
        if self.example is None:
            defaults = {"String": "", "Int32": 0, "Int64": 0, "Double": 0.0, "Boolean": False,
                        "DateTime": pd.Timestamp("2000-01-01")}
            self.example = pd.DataFrame({c: [defaults[t]] for c, t in self.input_schema.items()})

    @property
    def input_columns(self) -> list[str]:
        return list(self.input_schema)

    def empty_input(self) -> pd.DataFrame:
        """A zero-row frame with the input schema's dtypes (for swagger.json)."""
        return coerce_to_schema(pd.DataFrame({c: [] for c in self.input_schema}), self.input_schema)

    def output_example(self) -> pd.DataFrame:
        """The output for :attr:`example` (gives the output schema)."""
        return self.run(coerce_to_schema(self.example, self.input_schema))

    def default_parameters(self) -> dict[str, Any]:
        """Current values of the web parameters."""
        out = {}
        for pname, (module, attr) in self.web_parameters.items():
            out[pname] = getattr(next(m for m in self.modules if m.name == module), attr)
        return out

    def run(self, df: pd.DataFrame, parameters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run the modules over *df* (Studio's Run button); *parameters* as in ``GlobalParameters``.

        Unknown parameter names are ignored, as the real service does; values are converted
        to the type of the module parameter they set (``"4"`` -> ``4``).
        """
        modules = self._with_parameters(parameters or {})
        for module in modules:
            try:
                df = module.run(df)
            except ModuleError:
                raise
            except Exception as err:  # any failure inside a module is that module's error
                raise ModuleError(module.name, f"{type(err).__name__}: {err}") from err
        return df

    def _with_parameters(self, parameters: Mapping[str, Any]) -> list[Module]:
        per_module: dict[str, dict[str, Any]] = {}
        for pname, value in parameters.items():
            if pname not in self.web_parameters:
                continue
            module, attr = self.web_parameters[pname]
            current = getattr(next(m for m in self.modules if m.name == module), attr)
            per_module.setdefault(module, {})[attr] = _convert_parameter(pname, value, current)
        return [m.with_parameters(**per_module[m.name]) if m.name in per_module else m
                for m in self.modules]


def _convert_parameter(name: str, value: Any, current: Any) -> Any:
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
    elif isinstance(current, (int, np.integer)):
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is not None and number.is_integer():
            return int(number)
    elif isinstance(current, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    else:
        return value
    raise PayloadError(f"GlobalParameters[{name!r}] = {value!r} is not a valid "
                       f"{type(current).__name__}", column=name)


_NULLS = {"", "NA", "NaN", "nan", "null", "None"}


def coerce_to_schema(df: pd.DataFrame, schema: Mapping[str, str]) -> pd.DataFrame:
    """Convert *df*'s columns to the AzureML column types in *schema*.

    Column names must match the schema exactly (same names, same order); raises
    :class:`~azml_nb.errors.SchemaError` for a column mismatch and
    :class:`~azml_nb.errors.PayloadError` (``column`` and ``row`` set) for a value that
    does not parse as its column's type.

    >>> coerce_to_schema(pd.DataFrame({"a": ["1", "2"]}), {"a": "Int32"})["a"].tolist()
    [1, 2]
    """
    expected, given = list(schema), [str(c) for c in df.columns]
    if len(given) != len(expected):
        raise SchemaError(f"expected {len(expected)} column(s) {expected}, got {len(given)} {given}",
                          expected=expected, given=given)
    if given != expected:
        wrong = next(i for i, (g, e) in enumerate(zip(given, expected)) if g != e)
        raise SchemaError(f"column {wrong} is named {given[wrong]!r}, expected {expected[wrong]!r} "
                          f"(expected columns {expected})", expected=expected, given=given,
                          column=given[wrong])
    if all(_has_type(df[col].dtype, ctype) for col, ctype in schema.items()):
        return df
    out = {}
    for col, ctype in schema.items():
        s = df[col]
        out[col] = s if _has_type(s.dtype, ctype) else _coerce_column(s, col, ctype)
    return pd.DataFrame(out, index=df.index)


def _has_type(dtype, ctype: str) -> bool:
    """True when a column of *dtype* already holds *ctype* values (no conversion needed)."""
    if ctype == "String":
        return pd.api.types.is_string_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype) \
            and dtype != object
    if ctype in ("Int32", "Int64"):
        return pd.api.types.is_integer_dtype(dtype) and np.dtype(getattr(dtype, "numpy_dtype", dtype)).itemsize \
            <= (4 if ctype == "Int32" else 8)
    if ctype == "Double":
        return pd.api.types.is_float_dtype(dtype)
    if ctype == "Boolean":
        return pd.api.types.is_bool_dtype(dtype)
    if ctype == "DateTime":
        return pd.api.types.is_datetime64_any_dtype(dtype)
    return False


def _first_bad(mask: np.ndarray, series: pd.Series, col: str, ctype: str) -> None:
    if mask.any():
        row = int(np.flatnonzero(mask)[0])
        raise PayloadError(f"column {col!r} row {row}: {series.iloc[row]!r} is not a valid {ctype}",
                           column=col, row=row)


def _coerce_column(s: pd.Series, col: str, ctype: str) -> pd.Series:
    if ctype == "String":
        return s.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)).astype(object)
    text = s.astype(object)
    is_null = text.map(lambda v: v is None or (isinstance(v, float) and np.isnan(v))
                       or (isinstance(v, str) and v.strip() in _NULLS)).to_numpy(dtype=bool)
    if ctype in ("Int32", "Int64", "Double"):
        values = pd.to_numeric(text.where(~is_null, None).map(
            lambda v: v.strip() if isinstance(v, str) else v), errors="coerce")
        _first_bad(values.isna().to_numpy() & ~is_null, s, col, ctype)
        if ctype == "Double":
            return values.astype("float64")
        arr = values.to_numpy(dtype="float64")
        frac = ~np.isnan(arr) & (arr != np.round(arr))
        lo, hi = (-2**31, 2**31 - 1) if ctype == "Int32" else (-2**63, 2**63 - 1)
        _first_bad(frac | (~np.isnan(arr) & ((arr < lo) | (arr > hi))), s, col, ctype)
        dtype = "int32" if ctype == "Int32" else "int64"
        if is_null.any():
            return values.astype(dtype.capitalize())
        return values.astype(dtype)
    if ctype == "Boolean":
        mapping = {"true": True, "false": False, "1": True, "0": False}
        conv = text.map(lambda v: v if isinstance(v, bool) else mapping.get(str(v).strip().lower()))
        _first_bad(conv.isna().to_numpy() & ~is_null, s, col, ctype)
        return conv.astype("boolean") if is_null.any() else conv.astype(bool)
    if ctype == "DateTime":
        conv = pd.to_datetime(text.where(~is_null, None), errors="coerce", format="mixed")
        _first_bad(conv.isna().to_numpy() & ~is_null, s, col, ctype)
        return conv
    raise ValueError(f"unknown column type {ctype!r}")  # pragma: no cover - checked by Experiment


def simple_feature_hashing_experiment(*, bitsize: int = 3, ngrams: int = 2) -> Experiment:
    """The seed's ``SimpleFeatureHashingExperiment``: Select Columns (Col2) -> Feature Hashing.

    The web-service input is ``Col2`` (String); GlobalParameters ``"Hashing bitsize"`` and
    ``"N-grams"`` set the Feature Hashing module's parameters.
    """
    return Experiment(
        name="SimpleFeatureHashingExperiment",
        modules=[SelectColumns(["Col2"]), FeatureHashing(["Col2"], bitsize=bitsize, ngrams=ngrams)],
        input_schema={"Col2": "String"},
        example=pd.DataFrame({"Col2": ["This is a good day"]}),
        web_parameters={"Hashing bitsize": ("Feature Hashing", "bitsize"),
                        "N-grams": ("Feature Hashing", "ngrams")},
        description="Hashes the text in Col2 into 2**bitsize count features "
                    "(Select Columns in Dataset -> Feature Hashing).",
    )
