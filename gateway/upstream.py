"""The upstream seam: one pooled keep-alive aiohttp session per upstream.

aiohttp, not httpx: measured here, a Litestar proxy on httpx.AsyncClient tops out near
300 req/s and on aiohttp near 2,000 (../shared/DESIGN.md).
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Annotated

import aiohttp
import msgspec

from policies.backend_protection import BackendProtectionConfig
from policies.circuit_breaker import CircuitBreakerConfig
from policies.context import RequestContext
from policies.errors import GatewayProblem

# RFC 9110 §7.6.1 plus the de-facto ones; never forwarded in either direction
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
RETRY_STATUSES = frozenset({502, 503, 504})
# set by the gateway itself, so a client's value must not pass
_REPLACED = frozenset({"host", "content-length", "forwarded", "x-correlation-id", "traceparent"})


class UpstreamConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where an upstream lives and how long the gateway waits for it."""

    url: str
    """Base URL; the operation path is appended, e.g. http://erp.internal:8000/api."""
    connect_timeout: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    """Seconds to establish a connection before answering 502."""
    read_timeout: Annotated[float, msgspec.Meta(gt=0)] = 15.0
    """Seconds to wait for the response before answering 504."""
    max_connections: Annotated[int, msgspec.Meta(gt=0)] = 256
    """Pooled keep-alive connections to this upstream."""
    retries: Annotated[int, msgspec.Meta(ge=0, le=5)] = 2
    """Extra attempts for idempotent methods when the connection fails or the upstream answers 502/503/504."""
    retry_backoff_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 50
    """Base of the exponential backoff between attempts, with ±50% jitter."""
    protection: BackendProtectionConfig = BackendProtectionConfig()
    """Maximum in-flight requests and the priority classes that are shed first."""
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()


class Upstream:
    """Forwards requests to one upstream over a pooled session."""

    def __init__(self, name: str, config: UpstreamConfig) -> None:
        self.name = name
        self.config = config
        self.base_url = config.url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=config.connect_timeout, sock_read=config.read_timeout)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.config.max_connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def close(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()

    async def handle_request(self, ctx: RequestContext) -> None:
        """Send the request upstream; fill in the response or raise 502 / 504.

        Idempotent methods (RFC 9110 §9.2.2) are retried with jittered backoff when the
        connection fails or the upstream answers 502 / 503 / 504; others never are.
        """
        attempts = 1 + (self.config.retries if ctx.method in IDEMPOTENT else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                await self._send(ctx)
            except GatewayProblem as problem:
                if last or problem.slug != "upstream-unavailable":
                    raise
            else:
                if last or ctx.response_status not in RETRY_STATUSES:
                    return
            delay = self.config.retry_backoff_ms * (2**attempt) * random.uniform(0.5, 1.5) / 1000
            ctx.extra["upstream_retries"] = attempt + 1
            await asyncio.sleep(delay)

    async def _send(self, ctx: RequestContext) -> None:
        url = self.base_url + ctx.raw_path + ("?" + ctx.query_string if ctx.query_string else "")
        try:
            async with self._client().request(
                ctx.method, url, headers=_forward_headers(ctx), data=ctx.body or None,
                allow_redirects=False, compress=None,
            ) as response:
                body = await response.read()
        except (TimeoutError, asyncio.TimeoutError):
            raise GatewayProblem(504, "upstream-timeout", "Upstream timed out",
                                 f"upstream {self.name!r} did not answer within {self.config.read_timeout} s") from None
        except aiohttp.ClientError as exc:
            raise GatewayProblem(502, "upstream-unavailable", "Upstream unavailable",
                                 f"upstream {self.name!r} failed: {type(exc).__name__}") from None
        ctx.response_status = response.status
        # plain str: aiohttp's names are multidict istr, which the idempotency store cannot encode
        ctx.response_headers = [(str(k), v) for k, v in response.headers.items()
                                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
        ctx.response_body = body


def _forward_headers(ctx: RequestContext) -> dict[str, str]:
    connection_tokens = {t.strip().lower() for t in ctx.headers.get("connection", "").split(",")}
    headers = {name: value for name, value in ctx.headers.items()
               if name not in HOP_BY_HOP and name not in _REPLACED and name not in connection_tokens}
    headers["x-correlation-id"] = ctx.correlation_id
    headers["traceparent"] = _traceparent(ctx.headers.get("traceparent"))
    forwarded = f'for="{ctx.client}";proto={ctx.scheme};host="{ctx.host}"'
    previous = ctx.headers.get("forwarded")
    headers["forwarded"] = f"{previous}, {forwarded}" if previous else forwarded
    return headers


def _traceparent(sent: str | None) -> str:
    """Pass a well-formed W3C traceparent through (new span id); otherwise start a trace."""
    parts = sent.split("-") if sent else []
    valid = (len(parts) == 4 and len(parts[0]) == 2 and parts[0] != "ff" and len(parts[1]) == 32
             and len(parts[2]) == 16 and len(parts[3]) == 2 and _hex("".join(parts)) and parts[1] != "0" * 32)
    trace_id = parts[1] if valid else os.urandom(16).hex()
    flags = parts[3] if valid else "01"
    return f"00-{trace_id}-{os.urandom(8).hex()}-{flags}"


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
