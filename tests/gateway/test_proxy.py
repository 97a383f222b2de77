"""The governed path in one process, against a real socket upstream: what a cancelled request gives back."""

from __future__ import annotations

import asyncio

from gateway.pipeline import Pipeline
from gateway.proxy import Gateway
from gateway.routing import RoutingTable
from gateway.upstream import Upstream, UpstreamConfig
from policies.backend_protection import BackendProtectionConfig, BackendProtectionPolicy, UpstreamGuard
from policies.correlation_id import CorrelationIdConfig, CorrelationIdPolicy
from tests.gateway.test_routing import op, published


def test_a_request_cancelled_while_the_upstream_works_gives_its_slot_back() -> None:
    """A server cancels a request on shutdown or disconnect: the finishing policies must still run."""

    async def main() -> None:
        arrived = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            arrived.set()  # the request reached the upstream, which never answers
            await reader.read()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        config = BackendProtectionConfig(max_in_flight=1)
        guard = UpstreamGuard(config, "erp")
        pipeline = Pipeline(CorrelationIdPolicy(CorrelationIdConfig()), max_body_bytes=1024, body_timeout=15)
        gateway = Gateway(pipeline, {"erp": Upstream("erp", UpstreamConfig(url=url))})
        gateway.swap(RoutingTable.compile([published("erp.orders", "1.0.0", {"/orders": {"get": op("list")}})],
                                          lambda *args: [BackendProtectionPolicy(config, guard)]))
        scope = {"type": "http", "method": "GET", "path": "/erp.orders/v1/orders", "raw_path": b"/erp.orders/v1/orders",
                 "query_string": b"", "headers": [], "http_version": "1.1", "client": ("127.0.0.1", 5000)}
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        call = asyncio.ensure_future(gateway(scope, receive, send))
        await asyncio.wait_for(arrived.wait(), 5)
        assert guard.in_flight == 1
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        assert guard.in_flight == 0 and sent == []  # the slot is free again; nothing was answered
        await gateway.close()
        server.close()

    asyncio.run(main())


def test_dispatch_goes_by_the_first_path_segment() -> None:
    """/metrics.sales/v1 is a contract, /metrics the gateway's own; a prefix match would confuse them."""
    from gateway.app import dispatch

    seen: list[tuple[str, str]] = []

    def app(name: str):  # records which of the three apps a path reached
        async def handle(scope: dict, receive: object, send: object) -> None:
            seen.append((name, scope["path"]))
        return handle

    handler = dispatch(app("litestar"), app("gateway"), app("events"))  # type: ignore[arg-type]
    paths = ["/metrics", "/metrics.sales/v1/orders", "/registry/contracts", "/registry-mirror/v1/x",
             "/healthzcheck/v1/x", "/events/inventory/v1", "/events.archive/v1/x", "/.well-known/jwks.json", "/"]
    for path in paths:
        asyncio.run(handler({"type": "http", "path": path, "headers": []}, None, None))
    assert seen == [("litestar", "/metrics"), ("gateway", "/metrics.sales/v1/orders"),
                    ("litestar", "/registry/contracts"), ("gateway", "/registry-mirror/v1/x"),
                    ("gateway", "/healthzcheck/v1/x"), ("events", "/events/inventory/v1"),
                    ("gateway", "/events.archive/v1/x"), ("litestar", "/.well-known/jwks.json"), ("gateway", "/")]
