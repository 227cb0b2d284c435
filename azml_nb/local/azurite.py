"""Start and stop Azurite, Microsoft's Azure Storage emulator, for the offline stack.

Azurite is installed from npm by the project's ``package.json`` (``make setup`` or
``npm ci``). :class:`Azurite` runs its blob service with ``node`` directly (not ``npx``), so
the process id it holds is the server's own, on a free loopback port, with a throw-away
data folder that is removed again on :meth:`Azurite.stop`.

>>> from azml_nb.local.azurite import Azurite
>>> with Azurite() as blob:                                    # doctest: +SKIP
...     from azure.storage.blob import BlobServiceClient
...     BlobServiceClient.from_connection_string(blob.connection_string).create_container("c")
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

from ..errors import LocalStackError

log = logging.getLogger(__name__)

__all__ = ["Azurite", "ACCOUNT_NAME", "ACCOUNT_KEY", "find_azurite", "node_available"]

#: The development account every Azurite instance knows (published in the Azurite README).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")

_INSTALL_HINT = ("Install it with `make setup` (or `npm ci` in the project folder, which "
                 "needs Node.js >= 18: `apt-get install nodejs npm`).")

_running: "weakref.WeakSet[Azurite]" = weakref.WeakSet()


def node_available() -> bool:
    """True when a ``node`` executable and the npm-installed Azurite are both present."""
    try:
        find_azurite()
    except LocalStackError:
        return False
    return True


def _candidate_roots() -> list[Path]:
    roots = []
    env = os.environ.get("AZML_NB_NODE_MODULES")
    if env:
        roots.append(Path(env).expanduser())
    roots.append(Path(__file__).resolve().parents[2] / "node_modules")  # source checkout
    roots.append(Path.cwd() / "node_modules")
    return roots


def find_azurite() -> tuple[str, Path]:
    """Return ``(node executable, azurite-blob main script)``.

    Looks in ``$AZML_NB_NODE_MODULES``, the project's own ``node_modules`` and
    ``./node_modules``. Raises :class:`~azml_nb.errors.LocalStackError` saying how to
    install what is missing.
    """
    node = shutil.which("node")
    if node is None:
        raise LocalStackError("Node.js (`node`) is not on PATH, and Azurite needs it. " + _INSTALL_HINT)
    roots = _candidate_roots()
    for root in roots:
        script = root / ".bin" / "azurite-blob"
        if script.exists():
            return node, script.resolve()
    searched = ", ".join(str(r) for r in roots)
    raise LocalStackError(f"Azurite is not installed (no .bin/azurite-blob under {searched}). "
                          + _INSTALL_HINT)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Azurite:
    """One Azurite blob service on ``host:port`` with a throw-away data folder.

    Parameters
    ----------
    host : str
        Loopback address to bind (default ``127.0.0.1``).
    port : int
        0 (default) picks a free port.
    location : str or Path, optional
        Data folder; by default a new temporary folder, removed on :meth:`stop`.
    startup_timeout : float
        Seconds to wait until Azurite answers HTTP.

    Attributes
    ----------
    port, pid, blob_endpoint, connection_string, account_name, account_key
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, location: str | Path | None = None,
                 startup_timeout: float = 30.0):
        self.host = host
        self.port = port
        self._location = Path(location) if location is not None else None
        self._own_location = location is None
        self.startup_timeout = startup_timeout
        self.account_name = ACCOUNT_NAME
        self.account_key = ACCOUNT_KEY
        self._proc: subprocess.Popen | None = None
        self._log_path: Path | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> "Azurite":
        """Launch Azurite and return once it answers HTTP; idempotent."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        node, script = find_azurite()
        if self._location is None:
            self._location = Path(tempfile.mkdtemp(prefix="azml_nb-azurite-"))
        self._location.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):  # a picked free port can be taken before Azurite binds it
            port = self.port or _free_port(self.host)
            if self._launch(node, script, port):
                self.port = port
                _running.add(self)
                log.info("Azurite blob service on %s (pid %s)", self.blob_endpoint, self.pid)
                return self
            if self.port:  # an explicit port: no point in retrying
                break
        tail = self._log_tail()
        self._cleanup_location()
        raise LocalStackError(f"Azurite did not start on {self.host}:{self.port or port}. {tail}".strip())

    def _launch(self, node: str, script: Path, port: int) -> bool:
        assert self._location is not None
        self._log_path = self._location / "azurite-stdout.log"
        args = [node, str(script), "--blobHost", self.host, "--blobPort", str(port), "--silent",
                "--disableTelemetry", "--skipApiVersionCheck", "--loose",
                "--location", str(self._location)]
        with open(self._log_path, "wb") as out:
            self._proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=str(self._location))
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                return False
            try:
                with socket.create_connection((self.host, port), timeout=0.5) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(12).startswith(b"HTTP/1."):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        self._kill()
        return False

    def _log_tail(self) -> str:
        try:
            text = self._log_path.read_text(errors="replace") if self._log_path else ""
        except OSError:
            return ""
        return f"Azurite said: {text[-500:]}" if text.strip() else ""

    def _kill(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def _cleanup_location(self) -> None:
        if self._own_location and self._location is not None:
            shutil.rmtree(self._location, ignore_errors=True)
            self._location = None

    def stop(self) -> None:
        """Stop the Azurite process (by its own pid) and remove a temporary data folder."""
        pid = self.pid
        self._kill()
        self._cleanup_location()
        _running.discard(self)
        if pid is not None:
            log.info("Azurite (pid %s) stopped", pid)

    def __enter__(self) -> "Azurite":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses ---------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """Process id of the running Azurite, or None."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def blob_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        """Connection string of the development account on this Azurite (holds the key)."""
        return (f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
                f"AccountKey={self.account_key};BlobEndpoint={self.blob_endpoint};")

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<Azurite {self.blob_endpoint} {state}>"


@atexit.register
def _stop_all() -> None:  # an interpreter that exits never leaves an Azurite behind
    for azurite in list(_running):
        try:
            azurite.stop()
        except Exception:  # pragma: no cover - best effort at exit
            pass
