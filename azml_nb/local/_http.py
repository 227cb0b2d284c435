"""The host's error answers: the AzureML ``{"error": {...}}`` envelope and its status codes."""
from __future__ import annotations

from typing import Any, Sequence

__all__ = ["HostError", "bad_argument", "envelope"]

_STATUS_CODES = {  # default top-level code per status, as the real service answers
    400: "BadArgument", 401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed",
    408: "RequestTimeout", 413: "MemoryQuotaViolation", 500: "InternalError",
    503: "ServiceUnavailable", 504: "GatewayTimeout",
}


class HostError(Exception):
    """An answer the host gives instead of a result; turned into the error envelope."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 details: Sequence[dict[str, Any]] = (), headers: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.status = status
        self.code = code or _STATUS_CODES.get(status, "Error")
        self.message = message
        self.details = [dict(d) for d in details]
        self.headers = list(headers)

    def body(self) -> dict[str, Any]:
        return envelope(self.code, self.message, self.details)


def envelope(code: str, message: str, details: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """``{"error": {"code", "message", "details"}}``.

    >>> envelope("BadArgument", "Invalid argument provided.", [{"code": "X", "message": "y"}])
    {'error': {'code': 'BadArgument', 'message': 'Invalid argument provided.', 'details': [{'code': 'X', 'message': 'y'}]}}
    """
    return {"error": {"code": code, "message": message, "details": [dict(d) for d in details]}}


def bad_argument(detail_code: str, message: str, *, target: str | None = None) -> HostError:
    """400 BadArgument with one detail; *message* names the input/column/row at fault."""
    detail: dict[str, Any] = {"code": detail_code, "message": message}
    if target is not None:
        detail["target"] = target
    return HostError(400, f"Invalid argument provided. {message}", code="BadArgument", details=[detail])
