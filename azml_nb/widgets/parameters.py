"""``ParametersForm``: request options and the service's GlobalParameters as fields."""
from __future__ import annotations

import logging
from typing import Any, Mapping

import ipywidgets as w

from ..errors import ConfigurationError

log = logging.getLogger("azml_nb.widgets")

__all__ = ["ParametersForm", "global_parameters_schema"]

_STYLE = {"description_width": "16em"}
_WIDTH = "38em"


def global_parameters_schema(swagger: Mapping[str, Any]) -> dict[str, dict]:
    """The GlobalParameters properties declared by a service's swagger.json.

    Looks in ``definitions.GlobalParameters`` and in the ``GlobalParameters`` property of
    ``definitions.ExecutionRequest`` (following a ``$ref``). Returns name -> property
    (``type``, ``format``, ``default``, ``enum``, ``description`` when given). A value in
    the ``ExecutionRequest`` example serves as the default when none is declared.

    >>> global_parameters_schema({"definitions": {"GlobalParameters": {"properties": {
    ...     "Hashing bitsize": {"type": "integer", "default": 3}}}}})
    {'Hashing bitsize': {'type': 'integer', 'default': 3}}
    """
    definitions = swagger.get("definitions", {}) or {}

    def resolve(node: Any) -> Mapping:
        for _ in range(5):
            if isinstance(node, Mapping) and "$ref" in node:
                node = definitions.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
        return node if isinstance(node, Mapping) else {}

    candidates = [definitions.get("GlobalParameters")]
    request = resolve(definitions.get("ExecutionRequest"))
    candidates.append(request.get("properties", {}).get("GlobalParameters"))
    example = request.get("example", {}) if isinstance(request.get("example"), Mapping) else {}
    example = example.get("GlobalParameters") or {}
    for candidate in candidates:
        properties = resolve(candidate).get("properties")
        if properties:
            found = {str(name): dict(spec) for name, spec in properties.items()}
            for name, spec in found.items():
                if "default" not in spec and name in example:
                    spec["default"] = example[name]
            return found
    return {}


def _parameter_widget(name: str, spec: Mapping[str, Any]) -> w.ValueWidget:
    """A field for one GlobalParameter; without a default it starts empty (= not sent)."""
    kind = spec.get("type", "string")
    default = spec.get("default")
    common = {"description": name, "style": _STYLE, "tooltip": spec.get("description", name),
              "layout": w.Layout(width=_WIDTH)}
    if spec.get("enum"):
        options = [("(service default)", None)] * (default is None) + [(str(v), v) for v in spec["enum"]]
        return w.Dropdown(options=options, value=default if default in spec["enum"] else options[0][1],
                          **common)
    if kind == "boolean":
        return w.Dropdown(options=[("(service default)", None), ("true", True), ("false", False)],
                          value=None if default is None else bool(default), **common)
    if default is not None and kind == "integer":
        return w.IntText(value=int(default), **common)
    if default is not None and kind == "number":
        return w.FloatText(value=float(default), **common)
    return w.Text(value="" if default is None else str(default), placeholder=f"{kind}; empty: not sent",
                  **common)


def _parameter_value(name: str, spec: Mapping[str, Any], value: Any) -> Any:
    if not isinstance(value, str) or spec.get("type", "string") == "string" or spec.get("enum"):
        return value
    text = value.strip()
    try:
        return int(text) if spec.get("type") == "integer" else float(text)
    except ValueError:
        raise ConfigurationError(f"GlobalParameters[{name!r}]: expected "
                                 f"{'an integer' if spec.get('type') == 'integer' else 'a number'}, "
                                 f"got {value!r}") from None


class ParametersForm(w.VBox):
    """Request options for ``score()`` and one field per GlobalParameter of the service.

    Parameters
    ----------
    service : azml_nb.WebService, optional
        Its swagger.json supplies the GlobalParameters (fetched once, here).
    swagger : mapping, optional
        A swagger.json already at hand (instead of *service*).
    batch_size, concurrency : int
        Starting values of the two fields.

    Examples
    --------
    >>> form = ParametersForm(swagger={"definitions": {"GlobalParameters": {"properties": {
    ...     "Hashing bitsize": {"type": "integer", "default": 3}}}}})
    >>> form.global_parameters["Hashing bitsize"].value = 5
    >>> form.options()["global_parameters"]
    {'Hashing bitsize': 5}
    """

    def __init__(self, service: Any = None, *, swagger: Mapping[str, Any] | None = None,
                 batch_size: int = 1000, concurrency: int = 4, **kwargs: Any):
        super().__init__(**kwargs)
        if swagger is None and service is not None:
            swagger = service.swagger()
        self.schema = global_parameters_schema(swagger or {})
        self.api_version = w.Text(value="2.0", description="api-version", style=_STYLE,
                                  layout=w.Layout(width="24em"))
        self.details = w.Checkbox(value=True, description="details (column types in the answer)",
                                  indent=False, layout=w.Layout(margin="2px 0 2px 16em"))
        self.format = w.Dropdown(options=[("classic (ColumnNames/Values)", "classic"),
                                          ("swagger (row records)", "swagger")],
                                 value="classic", description="format", style=_STYLE,
                                 layout=w.Layout(width=_WIDTH))
        self.batch_size = w.BoundedIntText(value=batch_size, min=1, max=1_000_000,
                                           description="batch size (rows per request)", style=_STYLE,
                                           layout=w.Layout(width="24em"))
        self.concurrency = w.IntSlider(value=concurrency, min=1, max=32,
                                       description="concurrency (parallel requests)", style=_STYLE,
                                       layout=w.Layout(width=_WIDTH))
        self.global_parameters = {name: _parameter_widget(name, spec) for name, spec in self.schema.items()}
        self.message = w.HTML()
        for field in (self.api_version, *self.global_parameters.values()):
            field.observe(lambda change: self._check(), names="value")
        globals_box = ([w.HTML("<b>GlobalParameters</b> (from swagger.json)"),
                        *self.global_parameters.values()] if self.global_parameters
                       else [w.HTML("<i>The service declares no GlobalParameters.</i>")])
        self.children = [w.HTML("<b>Request options</b>"), self.api_version, self.details, self.format,
                         self.batch_size, self.concurrency, *globals_box, self.message]

    def _check(self) -> str:
        version = self.api_version.value.strip()
        problem = "" if version == "2.0" else (
            f"api-version {version!r}: AzureML (classic) web services answer api-version 2.0 only")
        self.message.value = f'<span style="color:#b00020">{problem}</span>' if problem else ""
        return problem

    def options(self) -> dict[str, Any]:
        """Keyword options for :meth:`azml_nb.WebService.score`.

        Keys: ``details``, ``format``, ``batch_size``, ``max_workers`` and
        ``global_parameters`` (name -> value, typed as swagger.json declares). The
        api-version field is checked (services answer 2.0 only) and not passed on: the
        client always sends 2.0.
        """
        problem = self._check()
        if problem:
            raise ConfigurationError(problem)
        return {
            "details": bool(self.details.value),
            "format": self.format.value,
            "batch_size": int(self.batch_size.value),
            "max_workers": int(self.concurrency.value),
            "global_parameters": {
                name: _parameter_value(name, self.schema[name], field.value)
                for name, field in self.global_parameters.items()
                if field.value is not None and field.value != ""},
        }

    def __repr__(self) -> str:
        return f"ParametersForm({self.options() if not self._check() else 'invalid'})"
