"""Batch execution (BES): jobs over blob storage, as an Azure-SDK-style poller.

Use it through :meth:`azml_nb.WebService.submit_batch` and :meth:`azml_nb.WebService.job`::

    job = svc.submit_batch(df, storage=store)   # upload CSV, submit, start
    job.id                                       # the continuation token
    job.wait()                                   # polls with backoff; progress display
    out = job.result()                           # typed DataFrame (dict for several outputs)
    svc.job(job.id).status                       # re-attach later, from anywhere
"""
from __future__ import annotations

import enum
import io
import json
import logging
import os
import time
import uuid
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pandas as pd

from .errors import BatchJobError, ConfigurationError, NotFoundError, PayloadError, ServiceError, redact

if TYPE_CHECKING:
    from .service import WebService
    from .storage import BlobStorage

log = logging.getLogger(__name__)

__all__ = ["JobStatus", "BatchJob", "submit"]


class JobStatus(enum.IntEnum):
    """A BES job's ``StatusCode``.

    >>> JobStatus.parse(4), JobStatus.parse("Running"), JobStatus.parse("3")
    (<JobStatus.Finished: 4>, <JobStatus.Running: 1>, <JobStatus.Cancelled: 3>)
    """

    NotStarted = 0
    Running = 1
    Failed = 2
    Cancelled = 3
    Finished = 4

    @classmethod
    def parse(cls, value: Any) -> "JobStatus":
        """Read a status given as a number, a numeric string or a name (any case)."""
        if isinstance(value, JobStatus):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        elif isinstance(value, str):
            text = value.strip()
            if text.isdigit() and int(text) in cls._value2member_map_:
                return cls(int(text))
            key = text.replace(" ", "").lower()
            key = {"canceled": "cancelled", "succeeded": "finished", "completed": "finished"}.get(key, key)
            for member in cls:
                if member.name.lower() == key:
                    return member
        raise PayloadError(f"unknown batch job StatusCode {value!r}; expected 0-4 or one of "
                           f"{', '.join(m.name for m in cls)}")

    @property
    def done(self) -> bool:
        """True for Failed, Cancelled and Finished."""
        return self in (JobStatus.Failed, JobStatus.Cancelled, JobStatus.Finished)


class BatchJob:
    """A poller for one BES job. Made by :meth:`WebService.submit_batch` or :meth:`WebService.job`.

    Creating one makes no network call; :attr:`status`, :meth:`wait`, :meth:`result`,
    :meth:`cancel` and :meth:`delete` do. The job id (:attr:`id`) is the continuation token:
    ``svc.job(job_id)`` re-attaches from another process or after a restart.

    Examples
    --------
    >>> job = svc.submit_batch(df, storage=store)    # doctest: +SKIP
    >>> job.wait(timeout=600)                        # doctest: +SKIP
    <JobStatus.Finished: 4>
    >>> job.result().shape                           # doctest: +SKIP
    (1000, 9)
    """

    def __init__(self, service: "WebService", job_id: str, *, storage: "BlobStorage | None" = None,
                 blobs: Sequence[str] = (), cleanup: bool = False):
        if not job_id:
            raise ConfigurationError("a batch job needs its id")
        self._service = service
        self.id = str(job_id)
        self.storage = storage
        self._blobs = list(blobs)   # blob names in `storage` written by submit (inputs, outputs)
        self._cancelled = False
        self._cleanup = cleanup
        self._last: dict | None = None
        self._last_status: JobStatus | None = None

    # -- state ---------------------------------------------------------------------------

    @property
    def blobs(self) -> list[str]:
        """Names (in :attr:`storage`) of the blobs :meth:`WebService.submit_batch` wrote for this job."""
        return list(self._blobs)

    def continuation_token(self) -> str:
        """The job id; give it to ``svc.job(token)`` to re-attach."""
        return self.id

    def refresh(self, *, timeout: Any = None) -> dict:
        """Fetch the job's status document (``StatusCode``, ``Results``, ``Details``)."""
        try:
            resp = self._service._send("GET", self._service.jobs_url(self.id), timeout=timeout,
                                       secrets=self._secrets(), what=f"status of batch job {self.id}")
        except NotFoundError:
            if not self._cancelled:
                raise
            # BES forgets a job on DELETE; this client asked for that, so it ended Cancelled
            self._last = {"StatusCode": int(JobStatus.Cancelled), "Results": None,
                          "Details": "cancelled by this client"}
            self._last_status = JobStatus.Cancelled
            return self._last
        try:
            body = resp.json()
        except ValueError as err:
            raise ServiceError(f"batch job {self.id}: status answer is not JSON",
                               status_code=resp.status_code) from err
        if not isinstance(body, dict) or "StatusCode" not in body:
            raise ServiceError(f"batch job {self.id}: status answer has no StatusCode",
                               status_code=resp.status_code)
        self._last = body
        self._last_status = JobStatus.parse(body["StatusCode"])
        return body

    @property
    def status(self) -> JobStatus:
        """The job's current status (one GET)."""
        self.refresh()
        return self._last_status  # type: ignore[return-value]

    @property
    def details(self) -> str | None:
        """The ``Details`` text of the last status fetched (the service's explanation of a failure)."""
        if self._last is None:
            return None
        value = self._last.get("Details")
        if value is None or isinstance(value, str):
            return redact(value, self._secrets()) if value else value
        return redact(json.dumps(value), self._secrets())

    def done(self) -> bool:
        """Whether the job has ended (Finished, Failed or Cancelled)."""
        return self.status.done

    def __repr__(self) -> str:
        known = self._last_status.name if self._last_status is not None else "unknown"
        return f"<BatchJob {self.id} of {self._service.service!r}, last status {known}>"

    # -- waiting -------------------------------------------------------------------------

    def wait(self, timeout: float | None = None, *, progress: bool = True, poll_interval: float = 0.5,
             max_poll_interval: float = 10.0, raise_on_failure: bool = True) -> JobStatus:
        """Poll until the job ends or *timeout* seconds pass; return the last status.

        The interval starts at *poll_interval* and grows by half each time up to
        *max_poll_interval*. A job that ends Failed or Cancelled raises
        :class:`~azml_nb.errors.BatchJobError` carrying the service's ``Details``
        (unless ``raise_on_failure=False``). When *timeout* passes first, the job's current
        (unfinished) status is returned. Ctrl-C stops waiting (the job keeps running) and
        logs how to re-attach or cancel.
        """
        from tqdm.auto import tqdm

        deadline = None if timeout is None else time.monotonic() + timeout
        interval = poll_interval
        bar = tqdm(total=None, desc=f"batch job {self.id}", disable=not progress,
                   bar_format="{desc} [{elapsed}]", leave=progress)
        try:
            while True:
                status = self.status
                bar.set_description_str(f"batch job {self.id}: {status.name}")
                if status.done:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    return status
                pause = interval if deadline is None else min(interval, max(0.0, deadline - time.monotonic()))
                time.sleep(pause)
                interval = min(max_poll_interval, interval * 1.5)
        except KeyboardInterrupt:
            log.warning("stopped waiting for batch job %s (last status %s); it keeps running on the "
                        "service. Re-attach with svc.job(%r), cancel with svc.job(%r).cancel()",
                        self.id, self._last_status.name if self._last_status is not None else "unknown",
                        self.id, self.id)
            raise
        finally:
            bar.close()
        if status != JobStatus.Finished and raise_on_failure:
            raise self._failure(status)
        return status

    def _failure(self, status: JobStatus) -> BatchJobError:
        details = self.details
        message = f"batch job {self.id} ended {status.name}"
        if details:
            message += f": {details}"
        return BatchJobError(message, job_id=self.id, status=status, code=status.name,
                             details=[{"code": status.name, "message": details}] if details else [])

    # -- results -------------------------------------------------------------------------

    def result(self, timeout: float | None = None, *, progress: bool = True) -> Any:
        """Wait for the job, then read each output (through its SAS URL) into a typed DataFrame.

        Returns a DataFrame for one output and ``{name: DataFrame}`` for several. Raises
        :class:`~azml_nb.errors.BatchJobError` when the job failed or was cancelled, and
        ``TimeoutError`` when it has not finished within *timeout* seconds.
        """
        status = self.wait(timeout, progress=progress)
        if status != JobStatus.Finished:
            raise TimeoutError(f"batch job {self.id} is still {status.name} after {timeout} s; "
                               f"call result() again or re-attach later with svc.job({self.id!r})")
        results = (self._last or {}).get("Results") or {}
        if not isinstance(results, Mapping) or not results:
            raise BatchJobError(f"batch job {self.id} finished without Results", job_id=self.id,
                                status=status)
        frames = {name: self._read_output(name, loc) for name, loc in results.items()}
        if self._cleanup:
            self.cleanup()
        return frames if len(frames) > 1 else next(iter(frames.values()))

    def _read_output(self, name: str, loc: Mapping[str, Any]) -> pd.DataFrame:
        relative = str(loc.get("RelativeLocation") or "")
        base = str(loc.get("BaseLocation") or "")
        token = str(loc.get("SasBlobToken") or "")
        if base and token:
            url = f"{base.rstrip('/')}/{relative.lstrip('/')}{token if token.startswith('?') else '?' + token}"
            resp = self._service._send("GET", url, auth=False, secrets=[token, *self._secrets()],
                                       what=f"download of output {name!r}")
            data = resp.content
        elif loc.get("ConnectionString"):
            from .storage import BlobStorage

            container, _, blob = relative.lstrip("/").partition("/")
            data = BlobStorage(str(loc["ConnectionString"]), container).download_bytes(blob)
        else:
            raise BatchJobError(f"batch job {self.id}: output {name!r} has neither a SAS token nor "
                                "a connection string", job_id=self.id)
        sep = "\t" if relative.lower().endswith(".tsv") else ","
        if relative.lower().endswith(".arff"):
            raise PayloadError(f"output {name!r} is ARFF; ask for a .csv output instead")
        if not data.strip():
            return pd.DataFrame()
        types = self._output_types(name)
        if types is None:
            return pd.read_csv(io.BytesIO(data), sep=sep)
        # type the text the way RRS answers are typed, from the service's output schema
        from .payload import read_values

        text = pd.read_csv(io.BytesIO(data), sep=sep, dtype=str, keep_default_na=False)
        columns = [str(c) for c in text.columns]
        if set(columns) != set(types):
            return pd.read_csv(io.BytesIO(data), sep=sep)
        return read_values(columns, [types[c] for c in columns], text.to_numpy().tolist(),
                           label=f"output {name!r}")

    def _output_types(self, name: str) -> dict[str, str] | None:
        """Column -> AzureML ColumnType of output *name* from swagger.json, when published."""
        from .payload import schema_types

        if self._service._schema_or_none() is None:
            return None
        return schema_types(self._service._swagger or {}, name)

    # -- control -------------------------------------------------------------------------

    def start(self, *, timeout: Any = None) -> None:
        """Start a job submitted with ``start=False``."""
        self._service._send("POST", self._service.jobs_url(self.id, "/start"), body=b"{}",
                            timeout=timeout, secrets=self._secrets(), what=f"start of batch job {self.id}")
        log.info("batch job %s started", self.id)

    def cancel(self, *, timeout: Any = None) -> None:
        """Cancel the job (BES ``DELETE .../jobs/{id}``); a job that has ended is left as it is."""
        self._service._send("DELETE", self._service.jobs_url(self.id), timeout=timeout,
                            secrets=self._secrets(), what=f"cancel of batch job {self.id}")
        self._cancelled = True
        log.info("batch job %s: cancel requested", self.id)

    def delete(self, *, timeout: Any = None) -> None:
        """Cancel the job if it runs and remove it; with ``cleanup=True`` also its blobs.

        A job the service no longer knows counts as deleted.
        """
        try:
            self.cancel(timeout=timeout)
        except NotFoundError:
            log.info("batch job %s: already gone from the service", self.id)
        if self._cleanup:
            self.cleanup()

    def cleanup(self) -> list[str]:
        """Delete the blobs this job wrote (uploaded inputs and outputs); return their names."""
        if self.storage is None:
            return []
        names = list(self._blobs)
        for loc in ((self._last or {}).get("Results") or {}).values():
            container, _, blob = str(loc.get("RelativeLocation", "")).lstrip("/").partition("/")
            if container == self.storage.container and blob and blob not in names:
                names.append(blob)
        removed = [n for n in names if self.storage.delete(n)]
        log.info("batch job %s: removed %d blobs", self.id, len(removed))
        return removed

    def _secrets(self) -> list[str]:
        found = list(getattr(self.storage, "secrets", []))
        for loc in ((self._last or {}).get("Results") or {}).values():
            if isinstance(loc, Mapping):
                found += [str(loc[k]) for k in ("SasBlobToken", "ConnectionString") if loc.get(k)]
        return found


def _storage_of(service: "WebService", storage: Any) -> "BlobStorage":
    from .storage import BlobStorage

    if storage is None:
        storage = service.storage
    if isinstance(storage, str):
        storage = BlobStorage(storage, "azureml")
    if storage is None:
        raise ConfigurationError(
            "a batch job needs blob storage: pass storage=BlobStorage(connection_string, container) "
            "or set AZML_STORAGE_CONNECTION_STRING")
    return storage


def submit(service: "WebService", data: Any, *, storage: Any = None,
           global_parameters: Mapping[str, Any] | None = None, outputs: Sequence[str] | None = None,
           input_name: str = "input1", cleanup: bool = False, start: bool = True,
           timeout: Any = None) -> BatchJob:
    """The steps of :meth:`WebService.submit_batch`: upload, submit, start."""
    store = _storage_of(service, storage)
    inputs = data if isinstance(data, Mapping) else {input_name: data}
    prefix = f"azml-nb/{uuid.uuid4().hex}"
    blobs: list[str] = []

    # 1. upload every input as CSV with a header row
    locations = {}
    for name, item in inputs.items():
        blob = f"{prefix}/{name}.csv"
        if isinstance(item, pd.DataFrame):
            locations[name] = store.upload_frame(blob, item)
        elif isinstance(item, (str, os.PathLike)):
            locations[name] = store.upload_file(blob, item)
        else:
            raise PayloadError(f"input {name!r}: expected a DataFrame or a CSV file path, "
                               f"got {type(item).__name__}")
        blobs.append(blob)

    # 2. name the outputs
    if outputs is None:
        schema = service._schema_or_none()
        outputs = list(schema["outputs"]) if schema and schema["outputs"] else ["output1"]
    cs = store.connection_string
    body = {
        "Inputs": {n: {"ConnectionString": cs, "RelativeLocation": loc} for n, loc in locations.items()},
        "Outputs": {n: {"ConnectionString": cs, "RelativeLocation": store.relative_location(f"{prefix}/{n}.csv")}
                    for n in outputs},
        "GlobalParameters": dict(global_parameters or {}),
    }
    blobs += [f"{prefix}/{n}.csv" for n in outputs]

    # 3. submit; the answer is the job id as a JSON string
    try:
        resp = service._send("POST", service.jobs_url(), body=json.dumps(body).encode("utf-8"),
                             timeout=timeout, secrets=store.secrets, idempotent=False,
                             what="batch job submit")
    except ServiceError:
        if cleanup:
            for blob in blobs:
                store.delete(blob)
        raise
    try:
        job_id = resp.json()
    except ValueError:
        job_id = resp.text.strip().strip('"')
    if not isinstance(job_id, str) or not job_id:
        raise ServiceError(f"batch job submit answered {redact(resp.text[:200], service.secrets)!r}, "
                           "not a job id", status_code=resp.status_code)
    job = BatchJob(service, job_id, storage=store, blobs=blobs, cleanup=cleanup)
    log.info("batch job %s submitted (%s)", job_id, ", ".join(f"{n} {loc}" for n, loc in locations.items()))

    # 4. start it
    if start:
        job.start(timeout=timeout)
    return job
