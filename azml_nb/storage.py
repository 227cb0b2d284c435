"""Blob helpers for batch (BES) jobs, on azure-storage-blob.

A :class:`BlobStorage` is one container in one storage account, reached through a
connection string (a real account or Azurite). It uploads job inputs, downloads job
outputs, and makes read-only SAS URLs. The account key and every SAS token stay out of
its repr, its log lines and its error messages.

>>> store = BlobStorage(connection_string, "jobs")          # doctest: +SKIP
>>> where = store.upload_frame("run1/input1.csv", df)       # '/jobs/run1/input1.csv'  # doctest: +SKIP
>>> url = store.sas_url("run1/input1.csv")                  # readable for an hour     # doctest: +SKIP
"""
from __future__ import annotations

import io
import logging
import os
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import pandas as pd

from .errors import StorageError, redact

log = logging.getLogger(__name__)

__all__ = ["BlobStorage", "AZURITE_API_VERSION", "parse_connection_string"]

#: The newest blob API version that both azure-storage-blob and Azurite 3.35 know.
#: Used for the Azurite development account, so an Azurite started without
#: ``--skipApiVersionCheck`` still answers.
AZURITE_API_VERSION = "2025-11-05"
_AZURITE_ACCOUNT = "devstoreaccount1"


def parse_connection_string(connection_string: str) -> dict[str, str]:
    """Split a storage connection string into its ``Key=Value`` parts.

    >>> parse_connection_string("AccountName=a;AccountKey=k==;BlobEndpoint=http://h/a;")["AccountKey"]
    'k=='
    """
    parts = {}
    for item in connection_string.split(";"):
        if item.strip():
            key, sep, value = item.partition("=")
            if not sep:
                raise StorageError(f"connection string part {key.strip()!r} has no '='")
            parts[key.strip()] = value.strip()
    return parts


class BlobStorage:
    """One blob container reached through a connection string.

    Parameters
    ----------
    connection_string : str
        ``DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...;BlobEndpoint=...``
        (Azurite's well-known development string works).
    container : str
        Container name; created on first upload when missing.
    api_version : str, optional
        Blob API version to speak. Defaults to :data:`AZURITE_API_VERSION` for the Azurite
        development account and to the SDK's newest for every other account.

    Examples
    --------
    >>> store = BlobStorage.from_env()                             # doctest: +SKIP
    >>> store.upload_frame("job/input1.csv", df)                   # doctest: +SKIP
    '/azureml/job/input1.csv'
    >>> store.download_frame("job/input1.csv").equals(df)          # doctest: +SKIP
    True
    """

    def __init__(self, connection_string: str, container: str, *, api_version: str | None = None):
        from azure.storage.blob import BlobServiceClient

        parts = parse_connection_string(connection_string)
        self.account_name = parts.get("AccountName", "")
        self._account_key = parts.get("AccountKey")
        self._secrets = [connection_string, self._account_key, parts.get("SharedAccessSignature")]
        self.container = container
        if api_version is None and self.account_name == _AZURITE_ACCOUNT:
            api_version = AZURITE_API_VERSION
        options: dict[str, Any] = {"api_version": api_version} if api_version else {}
        try:
            self._client = BlobServiceClient.from_connection_string(connection_string, **options)
        except (ValueError, TypeError) as err:
            raise StorageError(self._redact(f"invalid storage connection string: {err}")) from None
        self._connection_string = connection_string
        self._container_ready = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> "BlobStorage":
        """Build from ``AZML_STORAGE_CONNECTION_STRING`` and ``AZML_STORAGE_CONTAINER``
        (default container ``azureml``)."""
        env = os.environ if environ is None else environ
        cs = env.get("AZML_STORAGE_CONNECTION_STRING")
        if not cs:
            raise StorageError("AZML_STORAGE_CONNECTION_STRING is not set")
        return cls(cs, env.get("AZML_STORAGE_CONTAINER") or "azureml", **options)

    def close(self) -> None:
        """Close the connections this object holds to the storage account."""
        self._client.close()

    def __enter__(self) -> "BlobStorage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- facts -------------------------------------------------------------------------

    @property
    def connection_string(self) -> str:
        """The connection string (holds the account key: never log or show it)."""
        return self._connection_string

    @property
    def blob_endpoint(self) -> str:
        """The account's blob endpoint, without a trailing slash."""
        return self._client.url.rstrip("/")

    @property
    def secrets(self) -> list[str]:
        """The strings to hide wherever this storage's text can appear."""
        return [s for s in self._secrets if s]

    def relative_location(self, name: str) -> str:
        """``/container/name``: the form BES calls ``RelativeLocation``."""
        return f"/{self.container}/{name.lstrip('/')}"

    def __repr__(self) -> str:
        return (f"BlobStorage(account={self.account_name!r}, container={self.container!r}, "
                f"endpoint={self.blob_endpoint!r})")

    # -- blobs -------------------------------------------------------------------------

    def upload_bytes(self, name: str, data: bytes, *, overwrite: bool = True) -> str:
        """Upload *data* as blob *name*; return its relative location ``/container/name``."""
        self._ensure_container()
        with self._translate(f"upload of {name!r}"):
            self._client.get_blob_client(self.container, name).upload_blob(data, overwrite=overwrite)
        log.debug("uploaded %d bytes to %s", len(data), self.relative_location(name))
        return self.relative_location(name)

    def upload_file(self, name: str, path: str | os.PathLike, *, overwrite: bool = True) -> str:
        """Upload the file at *path* as blob *name*; return ``/container/name``."""
        self._ensure_container()
        with open(path, "rb") as fh, self._translate(f"upload of {name!r}"):
            self._client.get_blob_client(self.container, name).upload_blob(fh, overwrite=overwrite)
        log.debug("uploaded %s to %s", os.fspath(path), self.relative_location(name))
        return self.relative_location(name)

    def upload_frame(self, name: str, frame: pd.DataFrame, *, overwrite: bool = True) -> str:
        """Upload *frame* as CSV with a header row and no index; return ``/container/name``."""
        data = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
        return self.upload_bytes(name, data, overwrite=overwrite)

    def download_bytes(self, name: str) -> bytes:
        """The content of blob *name*."""
        with self._translate(f"download of {name!r}"):
            return self._client.get_blob_client(self.container, name).download_blob().readall()

    def download_frame(self, name: str, **read_csv: Any) -> pd.DataFrame:
        """Blob *name* read as CSV (header row) into a DataFrame."""
        return pd.read_csv(io.BytesIO(self.download_bytes(name)), **read_csv)

    def exists(self, name: str) -> bool:
        """Whether blob *name* exists."""
        with self._translate(f"lookup of {name!r}"):
            return self._client.get_blob_client(self.container, name).exists()

    def delete(self, name: str, *, missing_ok: bool = True) -> bool:
        """Delete blob *name*; return whether it existed."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            with self._translate(f"delete of {name!r}"):
                self._client.get_blob_client(self.container, name).delete_blob()
        except StorageError as err:
            if missing_ok and isinstance(err.__cause__, ResourceNotFoundError):
                return False
            raise
        log.debug("deleted %s", self.relative_location(name))
        return True

    def list_names(self, prefix: str = "") -> list[str]:
        """Names of the blobs in the container that start with *prefix*."""
        with self._translate(f"listing of {prefix!r}"):
            return [b.name for b in self._client.get_container_client(self.container)
                    .list_blobs(name_starts_with=prefix or None)]

    def sas_url(self, name: str, *, expiry: timedelta = timedelta(hours=1),
                permission: str = "r") -> str:
        """A URL that reads (or with ``permission="rw"`` also writes) blob *name* until *expiry*.

        The URL holds a SAS token: treat it like a key.
        """
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        if not self._account_key:
            raise StorageError("a SAS URL needs an AccountKey in the connection string")
        token = generate_blob_sas(
            self.account_name, self.container, name, account_key=self._account_key,
            permission=BlobSasPermissions.from_string(permission),
            expiry=datetime.now(timezone.utc) + expiry)
        return f"{self.blob_endpoint}/{self.container}/{name.lstrip('/')}?{token}"

    # -- internals ---------------------------------------------------------------------

    def _ensure_container(self) -> None:
        if self._container_ready:
            return
        from azure.core.exceptions import ResourceExistsError

        try:
            with self._translate(f"creation of container {self.container!r}"):
                self._client.create_container(self.container)
        except StorageError as err:
            if not isinstance(err.__cause__, ResourceExistsError):
                raise
        self._container_ready = True

    def _redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def _translate(self, what: str) -> "_Translate":
        return _Translate(self, what)


class _Translate:
    """Context manager turning azure-core errors into :class:`StorageError` (redacted)."""

    def __init__(self, storage: BlobStorage, what: str):
        self.storage, self.what = storage, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        from azure.core.exceptions import AzureError

        if exc is None or not isinstance(exc, AzureError):
            return False
        reason = getattr(exc, "reason", None) or type(exc).__name__
        code = getattr(exc, "error_code", None)
        status = getattr(exc, "status_code", None)
        head = " ".join(str(p) for p in (status, code or reason) if p)
        message = self.storage._redact(
            f"{self.what} in container {self.storage.container!r} of account "
            f"{self.storage.account_name!r} failed: {head}")
        raise StorageError(message) from exc
