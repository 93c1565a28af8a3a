"""A minimal HTTP/1.1 client for the load generator: one keep-alive connection, pre-built requests.

The generator shares two cores with the API and the broker, so what it spends per request
is taken from what is measured: httpx spent about 190 us of CPU per event on batches of 100
(more than the API itself). This client writes a request's bytes, built once before the
clock starts, and reads the status line, the headers and a ``Content-Length`` body, which
is all the Processor API (uvicorn) sends. Anything else (a closed or reset connection, a
response it cannot read) raises ``HttpError`` and the connection is opened afresh for the
next request.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024


class HttpError(Exception):
    """The request got no readable answer; the name of what went wrong is the message."""


@dataclass(frozen=True)
class Response:
    """What a test needs of an answer."""

    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


def post_request(url: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """The bytes of ``POST path`` with ``body``, keep-alive, for the host of ``url``."""
    netloc = urlsplit(url).netloc
    lines = [f"POST {path} HTTP/1.1", f"Host: {netloc}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive connection to a loopback HTTP/1.1 server, opened on first use."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> Response:
        """Send one pre-built request and read its answer, within the timeout."""
        try:
            return await asyncio.wait_for(self._exchange(request), self._timeout)
        except (OSError, EOFError, TimeoutError, ValueError, asyncio.LimitOverrunError, HttpError) as exc:
            await self.close()
            raise HttpError(type(exc).__name__ if not isinstance(exc, HttpError) else str(exc)) from exc

    async def _exchange(self, request: bytes) -> Response:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None, "a writer without a reader"
        self._writer.write(request)
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEADER_BYTES:
            raise HttpError("HeadersTooLarge")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        if not version.startswith("HTTP/1."):
            raise HttpError("NotHttp1")
        headers = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise HttpError("NoContentLength")
        body = await self._reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(int(rest.split(" ", 1)[0]), headers, body)

    async def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
