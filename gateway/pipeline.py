"""The one request pipeline: governed calls, event streams and (next) mediated calls all run here.

    scope ─► context (correlation id first) ─► the caller routes it ─► run(ctx, route, terminal)
             on_request in chain order, the body awaited before the first policy that reads it
             ─► terminal(ctx) unless a policy answered (the upstream call, an event append, …)
             ─► on_response in reverse order ─► the answer, or the problem document
             ─► on_finish of every policy whose on_request ran (also when the request is cancelled);
                the ones that only record run after the answer is sent

It is plain ASGI on purpose: routes and their chains are compiled when contracts load, so a
request costs one table lookup, the chain, and the terminal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, HTTPScope, Receive, Scope, Send

from policies.context import Policy, RequestContext, overrides
from policies.correlation_id import CorrelationIdPolicy
from registry.problems import PROBLEM_MEDIA_TYPE, Problem, ProblemType, internal_error

log = logging.getLogger("govgate.gateway")

Terminal = Callable[[RequestContext], Awaitable[None]]
"""What a route does once its policies let a request through: fills in ctx.response_*."""

BODY_TIMEOUT = ProblemType(408, "body-timeout", "Request timeout")
CLIENT_DISCONNECTED = ProblemType(400, "client-disconnected", "Client disconnected")
PAYLOAD_TOO_LARGE = ProblemType(413, "payload-too-large", "Payload too large")


class Route:
    """One operation (of an API, or an action on an event stream) with its chain compiled into phases."""

    __slots__ = ("contract", "version", "major", "method", "template", "operation_id", "upstream", "chain",
                 "prefix", "requests", "responses", "finishes", "records")

    def __init__(self, contract: str, version: str, major: int, method: str, template: str,
                 operation_id: str, upstream: str | None, chain: Sequence[Policy], prefix: str | None = None) -> None:
        self.contract = contract
        self.version = version
        self.major = major
        self.method = method
        self.template = template
        self.operation_id = operation_id
        self.upstream = upstream
        self.chain = tuple(chain)
        self.prefix = prefix or f"/{contract}/v{major}"  # the gateway path of the API, e.g. /erp.sales-orders/v1
        # each phase, in the order the pipeline calls it, with the policies that skip it left out. In
        # `requests`, (index, None) marks where the body is awaited: before the first policy that reads
        # it, so that the ones before (authentication, the rate limit's round trip) overlap its arrival.
        # `finishes` run before the answer is sent, `records` after it.
        body_at = next((i for i, p in enumerate(self.chain) if p.reads_body), len(self.chain))
        on_request = [(i, p.on_request) for i, p in enumerate(self.chain) if overrides(p, "on_request")]
        self.requests = (*((i, f) for i, f in on_request if i < body_at), (body_at - 1, None),
                         *((i, f) for i, f in on_request if i >= body_at))
        self.responses = tuple(p.on_response for p in reversed(self.chain) if overrides(p, "on_response"))
        on_finish = [(i, p) for i, p in reversed(list(enumerate(self.chain))) if overrides(p, "on_finish")]
        self.finishes = tuple((i, p.on_finish) for i, p in on_finish if not p.only_records)
        self.records = tuple((i, p.on_finish) for i, p in on_finish if p.only_records)


class Pipeline:
    """Runs a routed request through its chain and its terminal, and answers it."""

    def __init__(self, correlation: CorrelationIdPolicy, *, max_body_bytes: int, body_timeout: float) -> None:
        self.correlation = correlation  # runs before routing, so that even a 404 carries the id
        self.correlation_header = correlation.header.encode()
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    def context(self, scope: Scope) -> RequestContext:
        """A request's context, with its correlation id (the gateway serves HTTP scopes only)."""
        scope = cast("HTTPScope", scope)
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        path = instance_of(scope)
        client = scope.get("client")
        ctx = RequestContext(
            method=scope["method"], path=path, raw_path=path,
            query_string=scope.get("query_string", b"").decode("latin-1"), headers=headers,
            client=client[0] if client else "unknown", scheme=scope.get("scheme", "http"),
            host=headers.get("host", ""),
        )
        ctx.correlation_id = self.correlation.assign(headers)
        return ctx

    async def run(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext, route: Route,
                  terminal: Terminal) -> None:
        """The chain, the terminal and the answer; every policy that started finishes, whatever happens."""
        ctx.route = route
        instance = instance_of(scope)
        try:
            try:
                # HTTP/1 says when there is no body; HTTP/2 may send one without a length
                bodiless = (scope.get("http_version") in ("1.1", "1.0") and "transfer-encoding" not in ctx.headers
                            and ctx.headers.get("content-length", "0") == "0")
                await self._handle(ctx, route, terminal, None if bodiless else receive)
            except Problem as problem:
                await self.refuse(send, ctx, problem, instance)
            except Exception:  # a bug: answer with a problem, keep the process up
                log.exception("unexpected error", extra={"correlation_id": ctx.correlation_id})
                await self.refuse(send, ctx, internal_error(), instance)
            else:
                await self._answer(send, ctx, route)
        finally:  # also when the request is cancelled: slots, breaker probes and locks are given back
            for index, on_finish in route.finishes:
                if index <= ctx.reached:
                    await _finish(on_finish, ctx)
            for index, on_finish in route.records:  # after the answer: they only count and log
                if index <= ctx.reached:
                    await _finish(on_finish, ctx)

    async def _handle(self, ctx: RequestContext, route: Route, terminal: Terminal, receive: Receive | None) -> None:
        """Run the chain and the terminal (`receive` None: no body); ctx.reached says which policies finish."""
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
                await terminal(ctx)
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

    async def _answer(self, send: Send, ctx: RequestContext, route: Route) -> None:
        response_headers = [(k.encode("latin-1"), _public_location(k, v, route.prefix).encode("latin-1"))
                            for k, v in ctx.response_headers]  # the upstream's own correlation header is gone
        response_headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in ctx.add_headers)
        response_headers.append((self.correlation_header, ctx.correlation_id.encode()))
        response_headers.append((b"content-length", str(len(ctx.response_body)).encode()))
        await _send(send, ctx.response_status, response_headers, ctx.response_body)

    async def refuse(self, send: Send, ctx: RequestContext, problem: Problem, instance: str) -> None:
        """Answer with a problem document carrying the correlation id and the headers policies added."""
        ctx.problem, ctx.response_status = problem, problem.status
        body = problem.render(correlation_id=ctx.correlation_id, instance=instance)
        headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                              (self.correlation_header, ctx.correlation_id.encode()),
                              (b"content-length", str(len(body)).encode())]
        headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in problem.headers.items())
        headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in ctx.add_headers)
        await _send(send, problem.status, headers, body)


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    whole: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(whole)


async def _finish(on_finish: Callable[[RequestContext], Awaitable[None] | None], ctx: RequestContext) -> None:
    try:
        outcome = on_finish(ctx)
        if outcome is not None:
            await outcome
    except Exception:  # cleanup must never turn an answer into an error
        log.exception("a policy failed to finish", extra={"correlation_id": ctx.correlation_id})


async def read_body(headers: dict[str, str], receive: Receive, *, limit: int, timeout: float) -> bytes:
    """The whole request body: 413 past `limit` (declared or streamed), 408 when it stalls past `timeout`."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    try:
        async with asyncio.timeout(timeout):  # a body that stalls half-way must not hold a task
            return await _receive_body(receive, limit)
    except TimeoutError:
        raise BODY_TIMEOUT(f"the request body did not arrive within {timeout:g} s",
                           headers={"Connection": "close"}) from None


async def _receive_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise CLIENT_DISCONNECTED("the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def instance_of(scope: Scope) -> str:
    """The request's path as the client sent it (percent-encoded): a problem's `instance`."""
    return (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")


def _public_location(name: str, value: str, prefix: str) -> str:
    """An upstream's path-absolute Location, as the client must call it through the gateway."""
    if name.lower() == "location" and value.startswith("/") and not value.startswith("//"):
        return prefix + value
    return value


def _too_large(limit: int) -> Problem:
    # the rest of the body stays unread, so this connection cannot carry another request
    return PAYLOAD_TOO_LARGE(f"request bodies are limited to {limit} bytes", headers={"Connection": "close"})
