"""Batch execution (BES) jobs of the local web-service host.

A job is submitted (``NotStarted``), started (queued for a bounded pool of worker threads),
then runs: it downloads each input CSV from Azure Blob storage (Azurite) through the
``ConnectionString`` + ``RelativeLocation`` it was given, runs the experiment, uploads each
output (.csv, .tsv or .arff) and reports ``Results`` with a read-only, expiring SAS token.
"""
from __future__ import annotations

import io
import logging
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import IntEnum
from pathlib import PurePosixPath
from typing import Any, Mapping

import pandas as pd

from ..errors import PayloadError, SchemaError, redact
from ._http import HostError, bad_argument
from .experiments import Experiment, ModuleError, coerce_to_schema

log = logging.getLogger(__name__)

__all__ = ["JobStatus", "Job", "JobManager", "OUTPUT_EXTENSIONS"]

OUTPUT_EXTENSIONS = (".csv", ".tsv", ".arff")


class JobStatus(IntEnum):
    """BES StatusCode: the number or the name goes on the wire (the host sends the name)."""
    NotStarted = 0
    Running = 1
    Failed = 2
    Cancelled = 3
    Finished = 4


@dataclass
class BlobLocation:
    connection_string: str = field(repr=False)
    relative_location: str

    @property
    def container(self) -> str:
        return self.relative_location.strip("/").split("/", 1)[0]

    @property
    def blob(self) -> str:
        return self.relative_location.strip("/").split("/", 1)[1]

    def client(self):
        from azure.storage.blob import BlobServiceClient
        # fail a job within seconds when its storage is unreachable, not after the SDK's
        # default retries (about 90 s of exponential back-off)
        return BlobServiceClient.from_connection_string(self.connection_string, retry_total=1,
                                                        connection_timeout=5)


@dataclass
class Job:
    id: str
    service_key: tuple[str, str]
    inputs: dict[str, BlobLocation]
    outputs: dict[str, BlobLocation]
    global_parameters: dict[str, Any]
    status: JobStatus = JobStatus.NotStarted
    created: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    started: datetime | None = None
    ended: datetime | None = None
    results: dict[str, Any] | None = field(default=None, repr=False)  # holds connection strings
    details: str | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    future: Future | None = field(default=None, repr=False)

    def to_wire(self) -> dict[str, Any]:
        """The status body: ``{"StatusCode", "Results", "Details", ...}``."""
        def iso(t):
            return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if t else None
        return {"StatusCode": self.status.name, "Results": self.results, "Details": self.details,
                "CreatedAt": iso(self.created), "StartTime": iso(self.started), "EndTime": iso(self.ended)}


def _location(name: str, spec: Any, *, kind: str) -> BlobLocation:
    if not isinstance(spec, Mapping):
        raise bad_argument("MissingInputBlobInformation" if kind == "input" else "MissingOutputBlobInformation",
                           f"{kind} {name!r} must be an object with ConnectionString and RelativeLocation",
                           target=name)
    conn, rel = spec.get("ConnectionString"), spec.get("RelativeLocation")
    for field_name, value in (("ConnectionString", conn), ("RelativeLocation", rel)):
        if not isinstance(value, str) or not value.strip():
            raise bad_argument("MissingInputBlobInformation" if kind == "input" else "MissingOutputBlobInformation",
                               f"{kind} {name!r} has no {field_name}", target=name)
    parts = rel.strip("/").split("/", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise bad_argument("InvalidRelativeLocation",
                           f"{kind} {name!r}: RelativeLocation {rel!r} must look like '/container/blob.csv'",
                           target=name)
    loc = BlobLocation(conn, "/" + rel.strip("/"))
    try:
        client = loc.client()
        getattr(client.credential, "account_key")
    except (ValueError, AttributeError) as err:
        raise bad_argument("InvalidConnectionString",
                           f"{kind} {name!r}: the ConnectionString is not a storage connection string "
                           "with AccountName and AccountKey", target=name) from err
    return loc


class JobManager:
    """Holds the jobs of every service of one host and runs them on a bounded pool."""

    def __init__(self, *, workers: int = 2, sas_ttl: timedelta = timedelta(hours=1)):
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.sas_ttl = sas_ttl
        self._experiments: dict[tuple[str, str], Experiment] = {}

    def register(self, key: tuple[str, str], experiment: Experiment) -> None:
        self._experiments[key] = experiment

    def open(self) -> None:
        """Make the worker pool (at the host's start, and again after :meth:`shutdown`)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="azml_nb-bes")

    def shutdown(self) -> None:
        with self._lock:
            for job in self._jobs.values():
                job.cancel_event.set()
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)  # running jobs stop at their next step

    # --- requests ----------------------------------------------------------------------

    def submit(self, key: tuple[str, str], body: Any) -> Job:
        """Validate a submit body and create a NotStarted job (raises HostError 400)."""
        exp = self._experiments[key]
        if not isinstance(body, Mapping):
            raise bad_argument("InvalidJobRequest", "the request body must be a JSON object with 'Inputs' and 'Outputs'")
        if "Input" in body and "Inputs" in body:
            raise bad_argument("DuplicateInputInBatchCall",
                               "the request has both 'Input' and 'Inputs'; send only 'Inputs'")
        if body.get("Inputs") is not None:
            raw_inputs = body["Inputs"]
            if not isinstance(raw_inputs, Mapping):
                raise bad_argument("MissingInputBlobInformation", "'Inputs' must map input names to blob locations")
        elif body.get("Input") is not None:
            raw_inputs = {exp.input_name: body["Input"]}
        else:
            raw_inputs = {}
        if exp.input_name not in raw_inputs:
            raise bad_argument("MissingInputBlobInformation",
                               f"the request names no blob for input {exp.input_name!r} ('Inputs')",
                               target=exp.input_name)
        unknown = [n for n in raw_inputs if n != exp.input_name]
        if unknown:
            raise bad_argument("InputNameNotFound", f"unknown input name(s) {unknown}; "
                               f"this service has input {exp.input_name!r}", target=unknown[0])
        inputs = {n: _location(n, s, kind="input") for n, s in raw_inputs.items()}
        raw_outputs = body.get("Outputs") or {}
        if not isinstance(raw_outputs, Mapping):
            raise bad_argument("MissingOutputBlobInformation", "'Outputs' must map output names to blob locations")
        unknown = [n for n in raw_outputs if n != exp.output_name]
        if unknown:
            raise bad_argument("OutputNameNotFound", f"unknown output name(s) {unknown}; "
                               f"this service has output {exp.output_name!r}", target=unknown[0])
        outputs = {n: _location(n, s, kind="output") for n, s in raw_outputs.items()}
        for name, loc in outputs.items():
            ext = PurePosixPath(loc.blob).suffix.lower()
            if ext not in OUTPUT_EXTENSIONS:
                raise bad_argument("InvalidBlobExtension",
                                   f"output {name!r}: blob {loc.relative_location!r} has extension {ext or '(none)'!r}; "
                                   f"expected one of {list(OUTPUT_EXTENSIONS)}", target=name)
        params = body.get("GlobalParameters") or {}
        if not isinstance(params, Mapping):
            raise bad_argument("InvalidGlobalParameters", "'GlobalParameters' must be an object")
        job = Job(uuid.uuid4().hex, key, inputs, outputs, dict(params))
        if exp.output_name not in outputs:  # default output next to the input
            src = inputs[exp.input_name]
            outputs[exp.output_name] = BlobLocation(
                src.connection_string, f"/{src.container}/{job.id}{exp.output_name}.csv")
        with self._lock:
            self._jobs[job.id] = job
        log.debug("job %s submitted", job.id)
        return job

    def get(self, key: tuple[str, str], job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.service_key != key:
            raise HostError(404, f"Job {job_id!r} was not found for web service {key[1]!r} "
                                 f"in workspace {key[0]!r}.", code="NotFound")
        return job

    def list(self, key: tuple[str, str]) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if j.service_key == key]

    def start(self, key: tuple[str, str], job_id: str) -> Job:
        """Queue the job for a worker; starting a started job again changes nothing."""
        job = self.get(key, job_id)
        with self._lock:
            if job.future is None and job.status is JobStatus.NotStarted:
                if self._pool is None:
                    raise HostError(503, "The service is not running; start the host first.",
                                    code="ServiceUnavailable")
                job.future = self._pool.submit(self._run, job)
        return job

    def delete(self, key: tuple[str, str], job_id: str) -> Job:
        """Cancel the job (a running one stops at its next step) and forget it."""
        job = self.get(key, job_id)
        job.cancel_event.set()
        if job.future is not None:
            job.future.cancel()
        with self._lock:
            self._jobs.pop(job_id, None)
            if job.status in (JobStatus.NotStarted, JobStatus.Running):
                job.status, job.ended = JobStatus.Cancelled, datetime.now(timezone.utc)
        return job

    # --- the worker --------------------------------------------------------------------

    def _run(self, job: Job) -> None:
        if job.cancel_event.is_set():
            return
        job.status, job.started = JobStatus.Running, datetime.now(timezone.utc)
        secrets = [loc.connection_string for loc in (*job.inputs.values(), *job.outputs.values())]
        try:
            exp = self._experiments[job.service_key]
            frame = self._read_input(job, exp)
            self._check_cancel(job)
            out = exp.run(frame, job.global_parameters)
            self._check_cancel(job)
            results = {name: self._write_output(loc, out) for name, loc in job.outputs.items()}
            self._check_cancel(job)
        except _Cancelled:
            job.status = JobStatus.Cancelled
        except _JobFailed as err:
            job.status, job.details = JobStatus.Failed, redact(str(err), secrets)
        except ModuleError as err:
            job.status, job.details = JobStatus.Failed, redact(f"ModuleExecutionError: {err}", secrets)
        except PayloadError as err:
            job.status, job.details = JobStatus.Failed, redact(f"InvalidGlobalParameter: {err}", secrets)
        except Exception as err:  # storage or anything else: a job never crashes the host
            log.exception("job %s failed", job.id)
            job.status = JobStatus.Failed
            job.details = redact(f"{type(err).__name__}: {_first_line(err)}", secrets)
        else:
            job.results, job.status = results, JobStatus.Finished
        job.ended = datetime.now(timezone.utc)
        log.debug("job %s ended %s", job.id, job.status.name)

    @staticmethod
    def _check_cancel(job: Job) -> None:
        if job.cancel_event.is_set():
            raise _Cancelled()

    def _read_input(self, job: Job, exp: Experiment) -> pd.DataFrame:
        from azure.core.exceptions import ResourceNotFoundError

        loc = job.inputs[exp.input_name]
        try:
            data = loc.client().get_blob_client(loc.container, loc.blob).download_blob().readall()
        except ResourceNotFoundError as err:
            raise _JobFailed(f"Input blob {loc.relative_location!r} for {exp.input_name!r} was not found "
                             "in the storage account") from err
        sep = "\t" if loc.blob.lower().endswith(".tsv") else ","
        try:
            frame = pd.read_csv(io.BytesIO(data), sep=sep, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError as err:
            raise _JobFailed(f"Input blob {loc.relative_location!r} is empty; a CSV file with a "
                             "header row is required") from err
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise _JobFailed(f"Input blob {loc.relative_location!r} is not a valid CSV file: "
                             f"{_first_line(err)}") from err
        try:
            return coerce_to_schema(frame, exp.input_schema)
        except SchemaError as err:
            raise _JobFailed(f"Input blob {loc.relative_location!r} does not match the schema of "
                             f"{exp.input_name!r}: {err} (the CSV file needs a header row)") from err
        except PayloadError as err:
            raise _JobFailed(f"Input blob {loc.relative_location!r}: {err} "
                             f"(line {err.row + 2} of the file)") from err

    def _write_output(self, loc: BlobLocation, frame: pd.DataFrame) -> dict[str, Any]:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        ext = PurePosixPath(loc.blob).suffix.lower()
        if ext == ".arff":
            data = _to_arff(frame, PurePosixPath(loc.blob).stem).encode("utf-8")
        else:
            data = frame.to_csv(index=False, sep="\t" if ext == ".tsv" else ",").encode("utf-8")
        client = loc.client()
        try:
            client.create_container(loc.container)
        except ResourceExistsError:
            pass
        client.get_blob_client(loc.container, loc.blob).upload_blob(data, overwrite=True)
        cred = client.credential
        now = datetime.now(timezone.utc)
        token = generate_blob_sas(cred.account_name, loc.container, loc.blob, account_key=cred.account_key,
                                  permission=BlobSasPermissions(read=True),
                                  start=now - timedelta(minutes=5), expiry=now + self.sas_ttl)
        return {"ConnectionString": loc.connection_string, "RelativeLocation": loc.relative_location,
                "BaseLocation": client.url.rstrip("/"), "SasBlobToken": "?" + token}


class _Cancelled(Exception):
    pass


class _JobFailed(Exception):
    pass


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _to_arff(frame: pd.DataFrame, relation: str) -> str:
    """A minimal ARFF file: numeric columns as ``numeric``, everything else as ``string``."""
    def quote(v: Any) -> str:
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return "?"
        return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"

    lines = [f"@relation '{relation}'", ""]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    for col, num in zip(frame.columns, numeric):
        lines.append(f"@attribute {quote(col)} {'numeric' if num else 'string'}")
    lines += ["", "@data"]
    for row in frame.itertuples(index=False):
        lines.append(",".join(("?" if pd.isna(v) else str(v)) if num else quote(v)
                              for v, num in zip(row, numeric)))
    return "\n".join(lines) + "\n"
