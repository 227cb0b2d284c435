"""Run an ASGI app on uvicorn in a background thread, on a loopback port.

Shared by the web-service host and the gateway. The socket is bound before the thread
starts, so the URL is known (and the port reserved) the moment :func:`serve` returns.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from ..errors import LocalStackError

log = logging.getLogger(__name__)

__all__ = ["RunningServer", "serve"]


class RunningServer:
    """A uvicorn server running in a daemon thread. Use as a context manager or call :meth:`stop`."""

    def __init__(self, server: Any, thread: threading.Thread, sock: socket.socket, name: str):
        self._server = server
        self._thread = thread
        self._sock = sock
        self.name = name
        host, port = sock.getsockname()[:2]
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to finish in-flight requests and exit; wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():  # in-flight requests did not finish in time
            self._server.force_exit = True
            self._thread.join(timeout)
        self._sock.close()
        log.debug("%s on %s stopped", self.name, self.url)

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningServer {self.name} {self.url}>"


def serve(app: Any, *, host: str = "127.0.0.1", port: int = 0, name: str = "server",
          startup_timeout: float = 15.0, **uvicorn_options: Any) -> RunningServer:
    """Start *app* on ``host:port`` (0 picks a free port) and return once it accepts connections."""
    import uvicorn

    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when the listening
    # socket says so; without it every response pays Nagle + delayed ACK (~40 ms on loopback)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise LocalStackError(f"{name}: cannot listen on {host}:{port}: {err.strerror}") from err
    options = {"log_level": "warning", "access_log": False, "lifespan": "on",
               "timeout_graceful_shutdown": 5, **uvicorn_options}
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"azml_nb-{name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise LocalStackError(f"{name}: uvicorn did not start on {host}:{sock.getsockname()[1]}")
        time.sleep(0.01)
    running = RunningServer(server, thread, sock, name)
    log.info("%s listening on %s", name, running.url)
    return running
