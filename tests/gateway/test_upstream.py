"""The upstream client against scripted HTTP/1.1 servers on real sockets: framing, keep-alive, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.upstream import Upstream, UpstreamConfig
from policies.context import RequestContext
from registry.problems import Problem

Answer = Callable[[bytes], Awaitable[bytes | None]]  # the request's head and body -> raw answer (None: close)


class Scripted:
    """A TCP server that reads one request at a time and writes what the script answers."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = await self.answer(request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ctx(method: str = "POST", path: str = "/orders", query: str = "", body: bytes = b"",
        headers: dict[str, str] | None = None) -> RequestContext:
    request = RequestContext(method=method, path=path, raw_path=path, query_string=query,
                             headers=headers or {}, client="10.0.0.7", scheme="http", host="gw.example")
    request.body = body
    request.correlation_id = "corr-1"
    return request


def fixed(raw: bytes) -> Answer:
    async def answer(request: bytes) -> bytes:
        return raw
    return answer


def run(coro: Any) -> Any:
    return asyncio.run(coro)


OK = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"id\":\"42\"}"


def test_the_request_is_forwarded_whole_and_connections_are_reused() -> None:
    async def main() -> None:
        async with Scripted(fixed(OK)) as server:
            upstream = Upstream("erp", UpstreamConfig(url=server.url + "/api/"))
            headers = {"content-type": "application/json", "connection": "keep-alive, x-drop", "x-drop": "1",
                       "expect": "100-continue", "host": "gw.example", "accept": "application/json"}
            for n in range(3):
                request = ctx(body=b'{"n":%d}' % n, query="dry=1&x=%20", headers=headers)
                await upstream.handle_request(request)
                assert (request.response_status, request.response_body) == (201, b'{"id":"42"}')
                assert ("content-type", "application/json") in request.response_headers
            await upstream.close()
        assert server.connections == 1  # keep-alive: one connection for three calls
        head, _, body = server.requests[2].partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0] == "POST /api/orders?dry=1&x=%20 HTTP/1.1" and body == b'{"n":2}'
        names = {line.split(":")[0] for line in lines[1:]}
        assert {"content-type", "accept", "x-correlation-id", "traceparent", "forwarded", "content-length",
                "host"} <= names
        assert not names & {"connection", "x-drop", "expect"}  # hop-by-hop, named in Connection, moot
        assert f"host: 127.0.0.1:{server.port}" in lines
        assert 'forwarded: for="10.0.0.7";proto=http;host="gw.example"' in lines
    run(main())


def test_the_configured_correlation_header_is_set_on_the_request_and_dropped_from_the_answer() -> None:
    answer = b"HTTP/1.1 200 OK\r\nx-request-id: the-upstream-s-own\r\ncontent-length: 2\r\n\r\nok"

    async def main() -> None:
        async with Scripted(fixed(answer)) as server:
            upstream = Upstream("erp", UpstreamConfig(url=server.url), correlation_header="x-request-id")
            request = ctx("GET", headers={"x-request-id": "not sane; replaced by the gateway"})
            await upstream.handle_request(request)
            await upstream.close()
        lines = server.requests[0].decode().split("\r\n")
        assert [line for line in lines if line.startswith("x-request-id")] == ["x-request-id: corr-1"]
        assert "x-correlation-id" not in {line.split(":")[0] for line in lines}
        assert "x-request-id" not in {name for name, _ in request.response_headers}  # the gateway sets its own
    run(main())


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world",
], ids=["chunked", "early-hints-first"])
def test_framed_answers_arrive_whole_and_the_connection_is_reused(raw: bytes) -> None:
    async def main() -> None:
        async with Scripted(fixed(raw)) as server:
            upstream = Upstream("erp", UpstreamConfig(url=server.url))
            for _ in range(2):
                request = ctx("GET")
                await upstream.handle_request(request)
                assert (request.response_status, request.response_body) == (200, b"hello world")
                assert not {name.lower() for name, _ in request.response_headers} & {"transfer-encoding",
                                                                                      "content-length"}
            await upstream.close()
        assert server.connections == 1
    run(main())


def test_an_answer_that_ends_with_the_connection_is_whole_and_not_reused() -> None:
    async def main() -> None:
        async def close_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil close")
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(close_after, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        upstream = Upstream("erp", UpstreamConfig(url=url))
        for _ in range(2):  # the second call needs a new connection, and gets one
            request = ctx("GET")
            await upstream.handle_request(request)
            assert (request.response_status, request.response_body) == (200, b"until close")
        assert upstream.idle == []
        server.close()
    run(main())


def test_a_head_answer_ends_with_its_headers() -> None:
    async def main() -> None:
        async with Scripted(fixed(b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n")) as server:
            upstream = Upstream("erp", UpstreamConfig(url=server.url, read_timeout=2))
            request = ctx("HEAD")
            await asyncio.wait_for(upstream.handle_request(request), 1.5)  # not the read timeout
            assert (request.response_status, request.response_body) == (200, b"")
            assert upstream.idle == []  # llhttp would take the next answer for the announced body
    run(main())


@pytest.mark.parametrize(("raw", "why"), [
    (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part", "server disconnected"),
    (b"NOT HTTP AT ALL\r\n\r\n", "malformed response"),
    (None, "server disconnected"),
], ids=["cut-mid-body", "malformed", "closed-without-answer"])
def test_a_broken_answer_is_502_and_its_connection_is_dropped(raw: bytes | None, why: str) -> None:
    async def main() -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            if raw is not None:
                writer.write(raw)
                await writer.drain()
            writer.close()
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        upstream = Upstream("erp", UpstreamConfig(url=url, retries=0))
        with pytest.raises(Problem) as caught:
            await upstream.handle_request(ctx("GET"))
        assert (caught.value.status, caught.value.slug) == (502, "upstream-unavailable")
        assert why in caught.value.detail and upstream.idle == []
        server.close()
    run(main())


def test_a_slow_upstream_is_504_and_the_next_call_gets_a_fresh_connection() -> None:
    slow = True

    async def answer(request: bytes) -> bytes:
        if slow:
            await asyncio.sleep(1.0)
        return OK

    async def main() -> None:
        nonlocal slow
        async with Scripted(answer) as server:
            upstream = Upstream("erp", UpstreamConfig(url=server.url, read_timeout=0.2))
            with pytest.raises(Problem) as caught:
                await upstream.handle_request(ctx())
            assert (caught.value.status, caught.value.slug) == (504, "upstream-timeout")
            slow = False
            request = ctx()
            await upstream.handle_request(request)  # the late answer must not be taken for this one
            assert request.response_status == 201 and server.connections == 2
            await upstream.close()
    run(main())


def test_an_idle_connection_the_upstream_closed_is_not_reused() -> None:
    async def main() -> None:
        async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")  # keep-alive, then closes it
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(once, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        upstream = Upstream("erp", UpstreamConfig(url=url, retries=0))
        for _ in range(2):
            request = ctx()  # POST: never retried, so a stale connection would be a 502
            await upstream.handle_request(request)
            assert request.response_body == b"ok"
            await asyncio.sleep(0.05)  # the close reaches the client while the connection is idle
        server.close()
    run(main())


def test_nothing_listening_is_502_and_idempotent_calls_are_retried() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        upstream = Upstream("erp", UpstreamConfig(url=f"http://127.0.0.1:{port}", retries=2, retry_backoff_ms=1))
        request = ctx("GET")
        with pytest.raises(Problem) as caught:
            await upstream.handle_request(request)
        assert (caught.value.status, caught.value.slug) == (502, "upstream-unavailable")
        assert "ConnectionRefusedError" in caught.value.detail and request.upstream_retries == 2
    run(main())


@pytest.mark.parametrize("url", ["ftp://erp.internal", "erp.internal:8000", "http://erp.internal/api?x=1", "http://",
                                 "http://erp.internal:99999", "http://erp.internal:port"])
def test_an_upstream_url_that_cannot_be_called_is_refused_at_load(url: str) -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="http"):
        msgspec.convert({"url": url}, UpstreamConfig)
