"""``BatchJobMonitor``: watch a batch (BES) job instead of writing a polling loop."""
from __future__ import annotations

import html
import logging
import threading
import time
from typing import Any, Mapping

import ipywidgets as w
import pandas as pd
import traitlets

from ..errors import redact
from ._common import show, show_error, show_frame

log = logging.getLogger("azml_nb.widgets")

__all__ = ["BatchJobMonitor", "output_locations"]

# status name -> (progress stage out of 3, bar style)
_STAGES = {
    "NotStarted": (1, "info"),
    "Running": (2, "info"),
    "Finished": (3, "success"),
    "Failed": (3, "danger"),
    "Cancelled": (3, "warning"),
}


def output_locations(status_document: Mapping[str, Any]) -> dict[str, str]:
    """Output name -> blob URL (BaseLocation + RelativeLocation), without the SAS token.

    >>> output_locations({"Results": {"output1": {"BaseLocation": "https://a.blob.core.windows.net/",
    ...     "RelativeLocation": "/c/out.csv", "SasBlobToken": "?sig=SECRET"}}})
    {'output1': 'https://a.blob.core.windows.net/c/out.csv'}
    """
    found = {}
    for name, loc in ((status_document or {}).get("Results") or {}).items():
        if isinstance(loc, Mapping):
            base = str(loc.get("BaseLocation") or "").rstrip("/")
            relative = str(loc.get("RelativeLocation") or "").split("?", 1)[0]
            found[str(name)] = f"{base}/{relative.lstrip('/')}" if base else relative
    return found


class BatchJobMonitor(w.VBox):
    """Status, elapsed time, a progress bar and Cancel for a :class:`azml_nb.BatchJob`.

    The bar moves through the job's stages (submitted, NotStarted, Running, ended) and is
    coloured by the outcome. When the job finishes, a preview of the result and the output
    location (without its SAS token) are shown; a failed job shows the service's Details.

    Parameters
    ----------
    job : azml_nb.BatchJob
        The job to watch (``svc.submit_batch(...)`` or ``svc.job(job_id)``).
    interval : float
        Seconds between status requests when polling in the background.
    autostart : bool
        Start polling in a background thread right away (default). Otherwise call
        :meth:`refresh` (one poll) or :meth:`wait`.
    preview_rows : int
        Rows of the result shown when the job finishes.

    Attributes
    ----------
    result : DataFrame or dict or None
        The job's result once it finished and was read.
    """

    status = traitlets.Unicode("", help="the last status seen (a JobStatus name)")

    def __init__(self, job: Any, *, interval: float = 1.0, autostart: bool = True, preview_rows: int = 10,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.job = job
        self.interval = interval
        self.preview_rows = preview_rows
        self.started = time.monotonic()
        self.result: Any = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.title = w.HTML(f"<b>Batch job</b> <code>{html.escape(str(job.id))}</code>")
        self.status_label = w.HTML("status: <i>unknown</i>")
        self.elapsed_label = w.Label("elapsed: 0 s")
        self.progress = w.IntProgress(value=0, min=0, max=3, description="stage", bar_style="info")
        self.cancel_button = w.Button(description="Cancel", icon="stop", button_style="warning",
                                      tooltip="cancel the batch job (BES DELETE)")
        self.location = w.HTML()
        self.output = w.Output()
        self.children = [self.title, w.HBox([self.status_label, self.elapsed_label]),
                         w.HBox([self.progress, self.cancel_button]), self.location, self.output]
        self.cancel_button.on_click(self._on_cancel)
        if autostart:
            self.start()

    # --- polling ------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.status in ("Finished", "Failed", "Cancelled")

    def _secrets(self) -> list[str]:
        found = list(getattr(getattr(self.job, "_service", None), "secrets", []) or [])
        found += list(getattr(self.job, "_secrets", lambda: [])())
        return found

    def refresh(self) -> str:
        """Fetch the job's status once and update the view; returns the status name."""
        with self._lock:
            if self.done:
                return self.status
            self.elapsed_label.value = f"elapsed: {time.monotonic() - self.started:.0f} s"
            try:
                document = self.job.refresh()
            except Exception as err:  # shown and logged; polling stops
                self.error = err
                show_error(self.output, err, what="Status request", secrets=self._secrets())
                self._stop.set()
                return self.status
            from ..bes import JobStatus

            name = JobStatus.parse(document.get("StatusCode")).name
            stage, style = _STAGES.get(name, (0, "info"))
            self.progress.value, self.progress.bar_style = stage, style
            self.status_label.value = f"status: <b>{html.escape(name)}</b>"
            self._elapsed(document)
            if name in ("Finished", "Failed", "Cancelled"):
                self.cancel_button.disabled = True
                self._finish(name, document)
            self.status = name
            return name

    def _elapsed(self, document: Mapping[str, Any]) -> None:
        """Elapsed time from the job's own CreatedAt/EndTime when the service reports them."""
        created = pd.to_datetime(document.get("CreatedAt"), utc=True, errors="coerce")
        if pd.isna(created):
            return
        end = pd.to_datetime(document.get("EndTime"), utc=True, errors="coerce")
        if pd.isna(end):
            end = pd.Timestamp.now(tz="UTC")
        seconds = max(0.0, (end - created).total_seconds())
        self.elapsed_label.value = f"elapsed: {seconds:.1f} s (since {created:%H:%M:%S} UTC)"

    def _finish(self, name: str, document: Mapping[str, Any]) -> None:
        locations = output_locations(document)
        if locations:
            self.location.value = "output: " + ", ".join(
                f"{html.escape(k)} <code>{html.escape(redact(v, self._secrets()))}</code>"
                for k, v in locations.items())
        if name == "Finished":
            try:
                self.result = self.job.result(progress=False)
            except Exception as err:
                self.error = err
                show_error(self.output, err, what="Reading the result", secrets=self._secrets())
                return
            frame = self.result if not isinstance(self.result, dict) else next(iter(self.result.values()))
            show_frame(self.output, frame, title="Result", max_rows=self.preview_rows)
        else:
            details = redact(str(getattr(self.job, "details", None) or document.get("Details") or ""),
                             self._secrets())
            show(self.output,
                 f'<div style="color:#b00020"><b>Batch job {html.escape(name)}</b><br>'
                 f"{html.escape(details)}</div>", f"Batch job {name}\n{details}")

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            if self.done:
                break
            self._stop.wait(self.interval)

    def start(self) -> None:
        """Poll in a background thread until the job ends (or :meth:`stop`)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._poll, name=f"BatchJobMonitor-{self.job.id}",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop background polling (the job keeps running)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait(self, timeout: float | None = None) -> str:
        """Poll (in this thread) until the job ends or *timeout* seconds pass; the status name."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done and not self.error:
            self.refresh()
            if self.done or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(self.interval)
        return self.status

    def _on_cancel(self, button: w.Button | None = None) -> None:
        self.cancel_button.disabled = True
        with self._lock:
            if self.done:
                return
            try:
                self.job.cancel()
            except Exception as err:
                self.error = err
                show_error(self.output, err, what="Cancel", secrets=self._secrets())
                self.cancel_button.disabled = False
                return
            # the service forgets a deleted job, so its status cannot be asked again
            stage, style = _STAGES["Cancelled"]
            self.progress.value, self.progress.bar_style = stage, style
            self.status_label.value = "status: <b>Cancelled</b>"
            self.elapsed_label.value = f"elapsed: {time.monotonic() - self.started:.0f} s"
            show(self.output, "<div><b>Batch job cancelled</b> (BES DELETE sent)</div>",
                 "Batch job cancelled (BES DELETE sent)")
            self.status = "Cancelled"
        self._stop.set()

    def cancel(self) -> None:
        """Press Cancel from code."""
        self.cancel_button.click()

    def __repr__(self) -> str:
        return f"BatchJobMonitor(job={self.job.id!r}, status={self.status or 'unknown'!r})"
