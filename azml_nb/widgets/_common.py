"""Pieces the forms share: secret fields that keep their value out of widget state, and
helpers that write results and errors into an ``Output``.

Why secrets need care: a ``Password`` widget's ``value`` is an ordinary synced trait, so
whatever it holds is sent to the browser and stored in the notebook file when the widget
state is saved. :class:`SecretField` therefore moves a typed secret into a private Python
attribute the moment it arrives and clears the widget's ``value``; only a placeholder
("set") is shown. The secret lives in the kernel, never in widget state.

Outputs are written by assigning ``Output.outputs`` (one display-data message), which works
the same inside a kernel, in a background thread and in tests without a kernel.
"""
from __future__ import annotations

import html
import logging
from typing import Any, Iterable

import ipywidgets as w
import pandas as pd

from ..errors import ServiceError, redact

log = logging.getLogger("azml_nb.widgets")

__all__ = ["SecretField", "show", "show_error", "show_frame", "output_text"]

_SET_PLACEHOLDER = "\u2022" * 8 + " (set; type to replace)"
#: label width and field width shared by the forms, so their fields line up
LABEL_WIDTH = "13em"
FIELD_WIDTH = "38em"


class SecretField:
    """A ``Password`` input whose value never stays in the widget.

    When the user types a secret (the value syncs on Enter or when the field loses focus),
    it is moved into a private attribute and the widget is cleared; its placeholder then
    says that a value is set.

    Parameters
    ----------
    description : str
        The field's label.
    placeholder : str
        Shown while no secret is set.
    value : str, optional
        An initial secret (for example from the environment); it never enters the widget.

    Examples
    --------
    >>> key = SecretField("API key", "paste the service's API key")
    >>> key.widget.value = "s3cret"          # what the browser does when the user types
    >>> key.widget.value, key.value, key.is_set
    ('', 's3cret', True)
    """

    def __init__(self, description: str, placeholder: str = "", value: str | None = None, *,
                 label_width: str = LABEL_WIDTH, **layout: Any):
        self._placeholder = placeholder
        self._value = ""
        self.widget = w.Password(description=description, placeholder=placeholder,
                                 continuous_update=False, style={"description_width": label_width},
                                 layout=w.Layout(**{"width": FIELD_WIDTH, **layout}))
        self._callbacks: list = []
        self.widget.observe(self._take, names="value")
        if value:
            self.value = value

    def _take(self, change: dict) -> None:
        if change["new"]:
            self.value = change["new"]

    @property
    def value(self) -> str:
        """The secret ('' when none is set)."""
        return self._value

    @value.setter
    def value(self, secret: str | None) -> None:
        self._value = (secret or "").strip()
        if self.widget.value:
            self.widget.value = ""
        self.widget.placeholder = _SET_PLACEHOLDER if self._value else self._placeholder
        for callback in self._callbacks:
            callback()

    @property
    def is_set(self) -> bool:
        return bool(self._value)

    def clear(self) -> None:
        """Forget the secret."""
        self.value = ""

    def on_change(self, callback) -> None:
        """Call ``callback()`` whenever the secret is set or cleared."""
        self._callbacks.append(callback)

    def __repr__(self) -> str:
        return f"SecretField({self.widget.description!r}, {'set' if self.is_set else 'unset'})"


def output_text(out: w.Output) -> str:
    """All text an ``Output`` shows (plain-text parts of its messages), for tests and logs."""
    parts = []
    for message in out.outputs:
        if message.get("output_type") == "stream":
            parts.append(message.get("text", ""))
        elif "data" in message:
            parts.append(message["data"].get("text/plain", ""))
    return "\n".join(parts)


def show(out: w.Output, html_text: str, plain: str) -> None:
    """Replace what *out* shows by one display message (HTML with a plain-text twin)."""
    out.outputs = ({"output_type": "display_data", "metadata": {},
                    "data": {"text/html": html_text, "text/plain": plain}},)


def show_frame(out: w.Output, frame, *, title: str = "", max_rows: int = 20, max_cols: int = 40) -> None:
    """Show a DataFrame as a table (the first *max_rows* rows, at most *max_cols* columns,
    long texts cut to 60 characters)."""
    head = frame.head(max_rows).copy()
    for column in head.columns:                 # display only: cut long texts
        if head[column].dtype == object or pd.api.types.is_string_dtype(head[column]):
            head[column] = head[column].map(
                lambda v: v[:59] + "\u2026" if isinstance(v, str) and len(v) > 60 else v)
    table, text_ = head.to_html(border=0, max_cols=max_cols), head.to_string(max_cols=max_cols)
    more = f" (first {max_rows} of {len(frame)} rows)" if len(frame) > max_rows else ""
    caption = f"<b>{html.escape(title)}</b>{html.escape(more)}" if title else html.escape(more)
    show(out, f'<div class="azml-nb-table"><style>.azml-nb-table td, .azml-nb-table th '
              f'{{white-space: nowrap}}</style><div>{caption}</div>{table}</div>',
         f"{title}{more}\n{text_}")


def describe_error(err: BaseException, secrets: Iterable[str | None] = ()) -> tuple[str, str]:
    """(headline, detail lines) for an error, with every secret masked."""
    if isinstance(err, ServiceError):
        head = " ".join(str(p) for p in (err.status_code, err.code) if p is not None)
        headline = f"{head}: {err.message}" if head else err.message
        lines = [f"{d.get('code', '')}: {d.get('message', '')}" for d in err.details]
        if err.request_id:
            lines.append(f"request id {err.request_id}")
    else:
        headline = f"{type(err).__name__}: {err}"
        lines = []
    secrets = list(secrets)
    return redact(headline, secrets), [redact(line, secrets) for line in lines]


def show_error(out: w.Output, err: BaseException, *, what: str,
               secrets: Iterable[str | None] = ()) -> None:
    """Show an error in the form's output: the status, the service's code and message."""
    headline, lines = describe_error(err, secrets)
    log.warning("%s failed: %s", what, headline)
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    show(out,
         f'<div style="color:#b00020;border-left:4px solid #b00020;padding-left:8px">'
         f"<b>{html.escape(what)} failed</b><br><code>{html.escape(headline)}</code>"
         f"{'<ul>' + items + '</ul>' if items else ''}</div>",
         "\n".join([f"{what} failed: {headline}", *("  - " + line for line in lines)]))


def field_row(field: w.Widget, message: w.HTML) -> w.HBox:
    """A field with its inline validation message to the right."""
    return w.HBox([field, message], layout=w.Layout(align_items="center"))


def set_message(message: w.HTML, text: str, *, level: str = "error") -> None:
    """Set an inline validation message ('' clears it)."""
    color = {"error": "#b00020", "warning": "#a05a00", "ok": "#2a7d2e"}[level]
    message.value = f'<span style="color:{color}">{html.escape(text)}</span>' if text else ""


def text(description: str, value: str = "", placeholder: str = "", **layout: Any) -> w.Text:
    return w.Text(value=value, description=description, placeholder=placeholder,
                  style={"description_width": LABEL_WIDTH}, layout=w.Layout(**{"width": FIELD_WIDTH, **layout}))
