"""The load generator's HTTP/1.1 client against a server on loopback that answers as scripted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from tests.tools import http1

Answer = Callable[[bytes], bytes | None]  # request head -> raw answer, None: close the connection


@asynccontextmanager
async def server(answer: Answer) -> AsyncIterator[tuple[str, list[int]]]:
    """A loopback server; yields its URL and the number of requests per connection."""
    per_connection: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        per_connection.append(0)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                per_connection[-1] += 1
                raw = answer(head)
                if raw is None:
                    break
                writer.write(raw)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", per_connection
    finally:
        srv.close()
        await srv.wait_closed()


def accepted(_head: bytes) -> bytes:
    body = b'{"status":"accepted"}'
    return b"HTTP/1.1 202 Accepted\r\ncontent-length: %d\r\nretry-after: 5\r\n\r\n%s" % (len(body), body)


def test_requests_share_one_keep_alive_connection() -> None:
    async def main() -> None:
        async with server(accepted) as (url, per_connection):
            conn = http1.Connection(url, timeout=5)
            request = http1.post_request(url, "/metadata", {"Authorization": "Bearer t"}, b"{}")
            answers = [await conn.send(request) for _ in range(3)]
            await conn.close()
        assert [a.status for a in answers] == [202, 202, 202], answers
        assert answers[0].body == b'{"status":"accepted"}' and answers[0].headers["retry-after"] == "5"
        assert per_connection == [3], f"three requests on one connection, got {per_connection}"

    asyncio.run(main())


def test_a_closed_connection_is_an_error_and_the_next_request_reconnects() -> None:
    calls = 0

    def once_then_close(head: bytes) -> bytes | None:
        nonlocal calls
        calls += 1
        return None if calls == 2 else accepted(head)

    async def main() -> None:
        async with server(once_then_close) as (url, per_connection):
            conn = http1.Connection(url, timeout=5)
            request = http1.post_request(url, "/metadata", {}, b"{}")
            assert (await conn.send(request)).status == 202
            with pytest.raises(http1.HttpError, match="IncompleteReadError"):
                await conn.send(request)
            assert (await conn.send(request)).status == 202
            await conn.close()
        assert per_connection == [2, 1], per_connection

    asyncio.run(main())


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"HTTP/1.1 202 Accepted\r\n\r\n", "NoContentLength"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "NotHttp1"),
    ],
    ids=["no-content-length", "not-http"],
)
def test_an_answer_it_cannot_read_is_named(raw: bytes, error: str) -> None:
    async def main() -> None:
        async with server(lambda _head: raw) as (url, _):
            conn = http1.Connection(url, timeout=5)
            with pytest.raises(http1.HttpError, match=error):
                await conn.send(http1.post_request(url, "/metadata", {}, b"{}"))

    asyncio.run(main())


def test_no_answer_within_the_timeout_is_an_error() -> None:
    async def main() -> None:
        async with server(lambda _head: b"") as (url, _):  # reads the request, never answers
            conn = http1.Connection(url, timeout=0.2)
            with pytest.raises(http1.HttpError, match="TimeoutError"):
                await conn.send(http1.post_request(url, "/metadata", {}, b"{}"))

    asyncio.run(main())
