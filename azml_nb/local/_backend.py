"""The gateway's HTTP/1.1 client for backend calls: asyncio streams and a keep-alive pool.

A reverse proxy only needs a small part of HTTP: send one request with a known body, read
one response (``Content-Length``, chunked, or until close), reuse the connection. Written
on :mod:`asyncio` streams it costs a fraction of the CPU of a general client, which is
most of the gateway's overhead per call (see ``benchmarks/bench_gateway.py``).

Not done on purpose: following redirects (a proxy passes them on), decoding
``Content-Encoding`` (the bytes go through untouched), ``Expect: 100-continue``, HTTP/2.
"""
from __future__ import annotations

import asyncio
import ssl
import time
from urllib.parse import urlsplit

__all__ = ["BackendPool", "BackendError"]

_NO_BODY_STATUS = {204, 304}
_IDLE_SECONDS = 4.0          # below uvicorn's 5 s keep-alive: never reuse a connection it is closing
_MAX_HEAD = 1 << 20


class BackendError(ConnectionError):
    """The backend could not be reached, or closed the connection, or answered garbage."""


class _Conn:
    __slots__ = ("reader", "writer", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer, self.idle_since = reader, writer, 0.0

    def usable(self) -> bool:
        return (not self.reader.at_eof() and not self.writer.is_closing()
                and time.monotonic() - self.idle_since < _IDLE_SECONDS)

    def close(self) -> None:
        self.writer.close()


class BackendPool:
    """Keep-alive connections per (scheme, host, port); one request at a time per connection."""

    def __init__(self, *, max_idle: int = 64):
        self.max_idle = max_idle
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def request(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes,
                      *, timeout: float) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send one request; return (status, raw header pairs, body). Raises BackendError or TimeoutError."""
        parts = urlsplit(url)
        https = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if https else 80)
        key = (parts.scheme, host, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rsplit("@", 1)[-1]
        lines = [f"{method} {target} HTTP/1.1", f"Host: {netloc}"]
        for name, value in headers:
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise BackendError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return await asyncio.wait_for(self._exchange(key, https, method, head, body), timeout)

    async def _exchange(self, key, https, method, head, body):
        conn = self._take(key)
        if conn is None:
            try:
                if https and self._ssl is None:
                    self._ssl = ssl.create_default_context()
                reader, writer = await asyncio.open_connection(
                    key[1], key[2], ssl=self._ssl if https else None, limit=_MAX_HEAD)
            except OSError as err:
                raise BackendError(f"cannot connect to {key[1]}:{key[2]}: {err.strerror or err}") from None
            conn = _Conn(reader, writer)
        try:
            conn.writer.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                conn.writer.write(body)
            await conn.writer.drain()
            status, raw_headers, payload, keep = await self._read_response(conn.reader, method)
        except BaseException as err:
            conn.close()
            if isinstance(err, (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)):
                raise BackendError(f"backend closed the connection or answered badly: "
                                   f"{type(err).__name__}") from None
            raise
        if keep:
            self._give(key, conn)
        else:
            conn.close()
        return status, raw_headers, payload

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader, method: str):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, _, rest = head.partition(b"\r\n")
            version, code = status_line.split(b" ", 2)[:2]
            status = int(code)
            if not 100 <= status < 200 or status == 101:
                break                                   # skip interim 1xx answers
        raw_headers = []
        length, chunked, close = None, False, version == b"HTTP/1.0"
        for line in rest[:-4].split(b"\r\n") if rest[:-4] else ():
            name, _, value = line.partition(b":")
            name, value = name.strip(), value.strip()
            lname = name.lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lname == b"connection":
                close = close or b"close" in value.lower()
            raw_headers.append((name, value))
        if method == "HEAD" or status in _NO_BODY_STATUS:
            payload = b""
        elif chunked:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":    # trailers
                        pass
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            payload = b"".join(parts)
        elif length is not None:
            payload = await reader.readexactly(length)
        else:
            payload, close = await reader.read(), True
        return status, raw_headers, payload, not close

    def _take(self, key) -> _Conn | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    def _give(self, key, conn: _Conn) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
