"""The governed-call path: an ASGI app mounted under Litestar for `/{contract}/v{major}/...`.

It bypasses Litestar's per-request machinery on purpose: the routing table, validators
and policy chains are compiled when contracts load, so a request costs one table lookup,
the chain, and one upstream call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from litestar.types import Receive, Scope, Send

from gateway.problems import PROBLEM_MEDIA_TYPE, problem_body
from gateway.routing import Route, RoutingTable
from gateway.upstream import Upstream
from policies.context import RequestContext
from policies.correlation_id import CorrelationIdPolicy
from policies.errors import GatewayProblem

log = logging.getLogger("govgate.gateway")
BODY_TIMEOUT_SECONDS = 15.0


class Gateway:
    """Routes, checks and forwards governed calls."""

    def __init__(self, correlation: CorrelationIdPolicy, upstreams: dict[str, Upstream], max_body_bytes: int,
                 unrouted: Callable[[int], None] | None = None,
                 body_timeout: float = BODY_TIMEOUT_SECONDS) -> None:
        self.table = RoutingTable()
        self.correlation = correlation  # runs before routing, so that even a 404 carries the id
        self.correlation_header = correlation.header.encode()
        self.upstreams = upstreams
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.unrouted = unrouted or (lambda status: None)  # counts 404 / 405 that never reach a route

    def swap(self, table: RoutingTable) -> None:
        """Serve new requests from `table`; requests in flight finish on the old one."""
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        client = scope.get("client")
        ctx = RequestContext(
            method=scope["method"], path=path, raw_path=path,
            query_string=scope.get("query_string", b"").decode("latin-1"), headers=headers,
            client=client[0] if client else "unknown", scheme=scope.get("scheme", "http"),
            host=headers.get("host", ""),
        )
        ctx.correlation_id = self.correlation.assign(headers)
        try:
            route, path_params, operation_path = self.table.match(path, ctx.method)
        except GatewayProblem as problem:
            self.unrouted(problem.status)
            await send_problem(send, problem, ctx, self.correlation_header, path)
            return
        ctx.route = route
        ctx.path = ctx.raw_path = operation_path
        ctx.path_params = path_params
        try:
            try:
                # HTTP/1 says when there is no body; HTTP/2 may send one without a length
                bodiless = (scope.get("http_version") in ("1.1", "1.0") and "transfer-encoding" not in headers
                            and headers.get("content-length", "0") == "0")
                await self._handle(ctx, route, None if bodiless else receive)
            except GatewayProblem as problem:
                await self._fail(send, ctx, problem, path)
            except Exception:  # a bug: answer with a problem, keep the process up
                log.exception("unexpected error", extra={"correlation_id": ctx.correlation_id})
                await self._fail(send, ctx, GatewayProblem(500, "internal-error", "Internal error",
                                                           "the gateway failed; quote the correlation id"), path)
            else:
                await self._send(send, ctx, route)
        finally:  # also when the request is cancelled: slots, breaker probes and locks are given back
            for index, on_finish in route.finishes:
                if index <= ctx.reached:
                    await self._finish(on_finish, ctx)
            for index, on_finish in route.records:  # after the answer: they only count and log
                if index <= ctx.reached:
                    await self._finish(on_finish, ctx)

    async def _fail(self, send: Send, ctx: RequestContext, problem: GatewayProblem, path: str) -> None:
        ctx.problem, ctx.response_status = problem, problem.status
        await send_problem(send, problem, ctx, self.correlation_header, path)

    async def _handle(self, ctx: RequestContext, route: Route, receive: Receive | None) -> None:
        """Run the chain and the upstream call (`receive` None: no body); ctx.reached says which policies finish."""
        body = None if receive is None else asyncio.ensure_future(
            read_body(ctx.headers, receive, limit=self.max_body_bytes, timeout=self.body_timeout))
        try:
            for ctx.reached, on_request in route.requests:
                if on_request is None:  # the next policy reads the body: the ones before ran while it arrived
                    if body is not None:
                        ctx.body = await body
                    continue
                outcome = on_request(ctx)
                if outcome is not None:
                    await outcome
                if ctx.answered:
                    break
            else:
                ctx.reached = len(route.chain)
            if not ctx.answered:
                await self._upstream(route).handle_request(ctx)
            for on_response in route.responses:
                outcome = on_response(ctx)
                if outcome is not None:
                    await outcome
        finally:
            if body is None:
                pass
            elif not body.done():  # answered before the body was needed
                body.cancel()
            elif not body.cancelled():
                body.exception()  # retrieved: an early answer makes a failed read moot

    async def _send(self, send: Send, ctx: RequestContext, route: Route) -> None:
        response_headers = [(k.encode("latin-1"), _public_location(k, v, route.prefix).encode("latin-1"))
                            for k, v in ctx.response_headers]  # the upstream's own correlation header is gone
        response_headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in ctx.add_headers)
        response_headers.append((self.correlation_header, ctx.correlation_id.encode()))
        response_headers.append((b"content-length", str(len(ctx.response_body)).encode()))
        await send({"type": "http.response.start", "status": ctx.response_status, "headers": response_headers})
        await send({"type": "http.response.body", "body": ctx.response_body})

    def _upstream(self, route: Any) -> Upstream:
        upstream = self.upstreams.get(route.upstream or "")
        if upstream is None:
            raise GatewayProblem(502, "upstream-not-configured", "Upstream not configured",
                                 f"contract {route.contract!r} names upstream {route.upstream!r}, "
                                 "which this gateway has no address for")
        return upstream

    @staticmethod
    async def _finish(on_finish: Any, ctx: RequestContext) -> None:
        try:
            outcome = on_finish(ctx)
            if outcome is not None:
                await outcome
        except Exception:  # cleanup must never turn an answer into an error
            log.exception("a policy failed to finish", extra={"correlation_id": ctx.correlation_id})

    async def close(self) -> None:
        """Close every upstream's connection pool."""
        for upstream in self.upstreams.values():
            await upstream.close()


async def read_body(headers: dict[str, str], receive: Receive, *, limit: int, timeout: float) -> bytes:
    """The whole request body: 413 past `limit` (declared or streamed), 408 when it stalls past `timeout`."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    try:
        async with asyncio.timeout(timeout):  # a body that stalls half-way must not hold a task
            return await _receive_body(receive, limit)
    except TimeoutError:
        raise GatewayProblem(408, "body-timeout", "Request timeout",
                             f"the request body did not arrive within {timeout:g} s",
                             headers={"Connection": "close"}) from None


async def _receive_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayProblem(400, "client-disconnected", "Client disconnected",
                                 "the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _public_location(name: str, value: str, prefix: str) -> str:
    """An upstream's path-absolute Location, as the client must call it through the gateway."""
    if name.lower() == "location" and value.startswith("/") and not value.startswith("//"):
        return prefix + value
    return value


def _too_large(limit: int) -> GatewayProblem:
    # the rest of the body stays unread, so this connection cannot carry another request
    return GatewayProblem(413, "payload-too-large", "Payload too large",
                          f"request bodies are limited to {limit} bytes", headers={"Connection": "close"})


async def send_problem(send: Send, problem: GatewayProblem, ctx: RequestContext, header: bytes,
                       path: str) -> None:
    """Answer with a problem document carrying the correlation id and the headers policies added."""
    body = problem_body(problem.status, problem.slug, problem.title, problem.detail,
                        correlation_id=ctx.correlation_id, instance=path[:512], errors=problem.errors)
    headers: list[Any] = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (header, ctx.correlation_id.encode()),
                          (b"content-length", str(len(body)).encode())]
    headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in problem.headers.items())
    headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in ctx.add_headers)
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
