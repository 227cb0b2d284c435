"""``ScoreForm``: Studio's "Test" dialog as a widget."""
from __future__ import annotations

import logging
import time
from typing import Any, Mapping

import ipywidgets as w
import pandas as pd
import traitlets

from ._common import show, show_error, show_frame

log = logging.getLogger("azml_nb.widgets")

__all__ = ["ScoreForm", "service_secrets"]


def service_secrets(service: Any) -> list[str]:
    """The keys a client object holds (to mask them in anything a form shows)."""
    return [s for s in getattr(service, "secrets", []) if isinstance(s, str) and s]


def input_schema(swagger: Mapping[str, Any], input_name: str = "input1") -> dict[str, dict]:
    """Column name -> swagger property (``type``, ``format``) of an input, in order."""
    definitions = swagger.get("definitions", {}) or {}
    item = definitions.get(f"{input_name}Item")
    if item is None:
        item = next((d for n, d in definitions.items() if n.startswith("input") and n.endswith("Item")), {})
    return {str(k): dict(v) for k, v in (item.get("properties") or {}).items()}


def input_example(swagger: Mapping[str, Any], input_name: str = "input1") -> dict[str, Any]:
    """The first row of an input in the swagger.json example request ({} when none)."""
    request = (swagger.get("definitions", {}) or {}).get("ExecutionRequest") or {}
    inputs = (request.get("example") or {}).get("Inputs") or {}
    rows = inputs.get(input_name)
    if isinstance(rows, list) and rows and isinstance(rows[0], Mapping):
        return dict(rows[0])                                   # swagger format: row records
    if isinstance(rows, Mapping) and rows.get("Values"):     # classic format
        return dict(zip(rows.get("ColumnNames", []), rows["Values"][0]))
    return {}


def _swagger_type(dtype: Any) -> dict[str, str]:
    if pd.api.types.is_bool_dtype(dtype):
        return {"type": "boolean"}
    if pd.api.types.is_integer_dtype(dtype):
        return {"type": "integer"}
    if pd.api.types.is_float_dtype(dtype):
        return {"type": "number"}
    return {"type": "string"}


def _convert(text: str, spec: Mapping[str, Any], column: str) -> Any:
    """A field's text as the column's type (empty text is a missing value)."""
    text = text.strip() if spec.get("type") != "string" else text
    if text == "":
        return None
    kind = spec.get("type", "string")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        raise ValueError(f"column {column!r}: expected {'an integer' if kind == 'integer' else 'a number'}, "
                         f"got {text!r}") from None
    if kind == "boolean":
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"column {column!r}: expected true or false, got {text!r}")
    return text


class ScoreForm(w.VBox):
    """Score one row typed into a form (or a given DataFrame) and show the answer as a table.

    One text field per input column, generated from the service's swagger.json (or from
    *data*'s columns, pre-filled with its first row). "Score" is disabled while the call
    runs; the result appears as a table in :attr:`output`, an error with the status, the
    service's code, message and details.

    Parameters
    ----------
    service : azml_nb.WebService
        The service to call (for example ``CredentialsForm(...).service()``).
    data : DataFrame, optional
        A frame to send: its columns become the fields; with "send all rows" on (the
        default when it has several rows) the whole frame is scored.
    parameters : ParametersForm or mapping, optional
        Options for ``score()`` (a ``ParametersForm``'s ``options()`` are read at each click).
    schema : mapping, optional
        Column -> swagger property; by default read from the service's swagger.json.
    check_schema : bool
        Let the client compare the frame with swagger.json before sending (default). Off,
        a wrong column reaches the service and its 400 answer is shown.
    example : bool
        Start the fields with the swagger.json example request's first row (default), so
        one click scores something; False starts them empty, as Studio's dialog does.

    Attributes
    ----------
    result : DataFrame or None
        The last scored result.
    error : Exception or None
        The last error.
    """

    running = traitlets.Bool(False, help="a call is under way")

    def __init__(self, service: Any, *, data: pd.DataFrame | None = None, parameters: Any = None,
                 schema: Mapping[str, Mapping[str, Any]] | None = None, check_schema: bool = True,
                 example: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.check_schema = check_schema
        self.svc = service
        self.data = data
        self.parameters = parameters
        first: Mapping[str, Any] = {}
        if data is not None:
            first = data.iloc[0].to_dict() if len(data) else {}
            if schema is None:
                schema = {str(c): _swagger_type(t) for c, t in data.dtypes.items()}
        elif schema is None:
            swagger = service.swagger()
            schema = input_schema(swagger)
            first = input_example(swagger) if example else {}
        self.schema = {str(k): dict(v) for k, v in schema.items()}
        self.fields: dict[str, w.Text] = {}
        label = f"{min(24, 1 + 0.6 * max((len(c) for c in self.schema), default=4)):.0f}em"
        for column, spec in self.schema.items():
            value = first.get(column)
            value = "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)
            self.fields[column] = w.Text(value=value, description=column, style={"description_width": label},
                                         placeholder=spec.get("type", "string"),
                                         layout=w.Layout(width="40em"))
        self.all_rows = w.Checkbox(value=data is not None and len(data) > 1, indent=False,
                                   description=f"send all {len(data)} rows of the given frame"
                                   if data is not None else "")
        self.all_rows.layout.display = None if data is not None and len(data) > 1 else "none"
        self.all_rows.observe(self._toggle_fields, names="value")
        self.score_button = w.Button(description="Score", button_style="primary", icon="check")
        self.output = w.Output()
        self.result: pd.DataFrame | None = None
        self.error: BaseException | None = None
        self.children = [w.HTML("<b>Enter data to score</b>"), *self.fields.values(), self.all_rows,
                         self.score_button, self.output]
        self.score_button.on_click(self._on_score)
        self._toggle_fields()

    def _toggle_fields(self, change: Any = None) -> None:
        for field in self.fields.values():
            field.disabled = bool(self.all_rows.value)

    def frame(self) -> pd.DataFrame:
        """The frame the Score button sends (one row from the fields, or the given frame)."""
        if self.data is not None and self.all_rows.value:
            return self.data
        row = {c: _convert(f.value, self.schema[c], c) for c, f in self.fields.items()}
        return pd.DataFrame([row], columns=list(self.fields))

    def _options(self) -> dict[str, Any]:
        if self.parameters is None:
            return {}
        if hasattr(self.parameters, "options"):
            return dict(self.parameters.options())
        return dict(self.parameters)

    def score(self) -> pd.DataFrame | None:
        """Press Score from code; returns the result (None on error, shown in the form)."""
        self.score_button.click()
        return self.result

    def _on_score(self, button: w.Button | None = None) -> None:
        self.score_button.disabled = True
        self.running = True
        self.error = None
        show(self.output, "<i>Scoring\u2026</i>", "Scoring...")
        try:
            frame = self.frame()
            options = {"progress": False, "check_schema": self.check_schema, **self._options()}
            started = time.perf_counter()
            result = self.svc.score(frame, **options)
            seconds = time.perf_counter() - started
        except Exception as err:  # shown in the form, logged, never dropped
            self.error = err
            self.result = None
            show_error(self.output, err, what="Score", secrets=service_secrets(self.svc))
        else:
            self.result = result
            rows, columns = result.shape
            show_frame(self.output, result, title=f"Result: {rows} row{'s' * (rows != 1)} x "
                       f"{columns} column{'s' * (columns != 1)} in {seconds:.2f} s")
            log.info("scored %d rows", len(frame))
        finally:
            self.running = False
            self.score_button.disabled = False

    def __repr__(self) -> str:
        return f"ScoreForm(columns={list(self.fields)!r}, running={self.running})"
