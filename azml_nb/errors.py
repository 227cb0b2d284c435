"""One exception hierarchy for the whole package.

Every error raised on purpose by :mod:`azml_nb` derives from :class:`AzmlError`.
Errors about the caller's input also derive from :class:`ValueError`, so code that
already catches ``ValueError`` keeps working::

    AzmlError
    ├── PayloadError (ValueError)        a frame or wire body that cannot be converted
    │   └── SchemaError                  a frame that does not match the service's schema
    ├── ServiceError                     an HTTP error answered by a web service or gateway
    │   ├── AuthenticationError          401 / 403 from the service or the gateway
    │   ├── NotFoundError                404
    │   ├── ThrottledError               503 throttling, 429 rate limit, 408/504 timeouts
    │   └── BatchJobError                a BES job that ended Failed or Cancelled
    ├── StorageError                     Azure Blob storage (or Azurite) failures
    ├── ConfigurationError (ValueError)  missing or contradictory settings (env vars, serve JSON)
    └── LocalStackError                  the offline stack could not start (Node.js, ports, ...)

Secrets never appear in any message: code that builds these errors passes text through
:func:`azml_nb.errors.redact` with the secrets it knows.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "AzmlError",
    "PayloadError",
    "SchemaError",
    "ServiceError",
    "AuthenticationError",
    "NotFoundError",
    "ThrottledError",
    "BatchJobError",
    "StorageError",
    "ConfigurationError",
    "LocalStackError",
    "redact",
]


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Return *text* with every non-empty secret replaced by ``***``.

    >>> redact("key=abc123 sig=xyz", ["abc123", None, "xyz"])
    'key=*** sig=***'
    """
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class AzmlError(Exception):
    """Root of every error raised by azml_nb."""


class PayloadError(AzmlError, ValueError):
    """A DataFrame or wire body that cannot be converted.

    ``column`` and ``row`` name where the problem is, when it has a place.
    """

    def __init__(self, message: str, *, column: Any = None, row: Any = None):
        super().__init__(message)
        self.column = column
        self.row = row


class SchemaError(PayloadError):
    """A frame whose columns or types do not match what the service expects."""

    def __init__(self, message: str, *, expected: Sequence | None = None,
                 given: Sequence | None = None, column: Any = None):
        super().__init__(message, column=column)
        self.expected = list(expected) if expected is not None else None
        self.given = list(given) if given is not None else None


class ServiceError(AzmlError):
    """An error answered by an AzureML web service (or an APIM gateway in front of it).

    Attributes
    ----------
    status_code : int or None
        HTTP status; None when the request never got an answer (connection error).
    code : str or None
        The service's error code, e.g. ``"BadArgument"`` or ``"RequestThrottled"``.
    message : str
        The service's message (or the body's text when the body is not JSON).
    details : list of dict
        The ``details`` list of the error envelope, each with ``code`` and ``message``.
    request_id : str or None
        The request id header of the answer, when present.
    rows : range or None
        Positions (0-based, in the caller's frame) of the rows the failing request held.
    retry_after : float or None
        Seconds to wait, from a ``Retry-After`` header.
    """

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None,
                 details: Sequence[Mapping[str, Any]] | None = None, request_id: str | None = None,
                 rows: range | None = None, retry_after: float | None = None, body: str | None = None):
        self.message = message
        self.status_code = status_code
        self.code = code
        self.details = list(details or [])
        self.request_id = request_id
        self.rows = rows
        self.retry_after = retry_after
        self.body = body
        super().__init__(self._describe())

    def _describe(self) -> str:
        head = " ".join(str(p) for p in (self.status_code, self.code) if p is not None)
        text = f"{head}: {self.message}" if head else self.message
        for d in self.details:
            text += f"\n  - {d.get('code', '')}: {d.get('message', '')}"
        if self.rows is not None and len(self.rows):
            text += f"\n  (rows {self.rows.start}..{self.rows.stop - 1} of the input)"
        if self.request_id:
            text += f"\n  (request id {self.request_id})"
        return text

    def __str__(self) -> str:  # rows may be attached after construction
        return self._describe()


class AuthenticationError(ServiceError):
    """401/403: a missing, wrong or suspended key (service key or subscription key)."""


class NotFoundError(ServiceError):
    """404: unknown workspace, service, job, or no gateway operation matched."""


class ThrottledError(ServiceError):
    """Throttling or time-outs worth retrying: 503, 429, 408, 504."""


class BatchJobError(ServiceError):
    """A batch (BES) job that ended Failed or Cancelled; ``job_id`` and ``status`` say which."""

    def __init__(self, message: str, *, job_id: str | None = None, status: Any = None, **kw: Any):
        self.job_id = job_id
        self.status = status
        super().__init__(message, **kw)


class StorageError(AzmlError):
    """Azure Blob storage (or Azurite) refused or failed an operation."""


class ConfigurationError(AzmlError, ValueError):
    """Missing or contradictory settings: no base URL, an unset environment variable, ..."""


class LocalStackError(AzmlError):
    """The offline stack could not start or stop: Node.js or Azurite missing, a port taken, ..."""
