"""The composition root: registry + policies + gateway in one Litestar app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from importlib.resources import files
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway import oauth
from gateway.chain import ChainBuilder
from gateway.config import GatewayConfig
from gateway.events.admin import events_admin_router
from gateway.events.http import EventsGateway
from gateway.pipeline import instance_of
from gateway.proxy import Gateway
from gateway.routing import RoutingTable
from gateway.services import Services
from policies.correlation_id import CorrelationIdPolicy
from registry import webhooks
from registry.api import registry_router
from registry.approvals import load_policy
from registry.audit import correlation_id as audit_correlation
from registry.lint import lint, load_ruleset
from registry.model import RESERVED_NAMES, Usage
from registry.problems import PROBLEM_MEDIA_TYPE, Problem, ProblemType, internal_error
from registry.service import Registry
from registry.store import Store, open_store

log = logging.getLogger("govgate")
CONFIG_ENV = "GOVGATE_CONFIG_JSON"
# served by Litestar handlers; every other path is a governed call and the gateway tags it itself
OWN_SEGMENTS = RESERVED_NAMES | {".well-known"}  # first path segments: /metrics.sales/v1 is a contract

HEADER_TOO_LARGE = ProblemType(431, "header-too-large", "Request header fields too large")
# what Litestar's own errors (unknown path, wrong method, a malformed parameter) are called
_FRAMEWORK_SLUGS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
                    405: "method-not-allowed", 409: "conflict", 413: "payload-too-large",
                    415: "unsupported-media-type"}


class Reloader:
    """Keeps the routing table, the event routes and the consumer directory in step with the store.

    A change made through this instance reloads here, then tells the others over Redis pub/sub;
    every instance reloads when another announces a change.
    """

    def __init__(self, store: Store, services: Services, gateway: Gateway, events: EventsGateway) -> None:
        self.store = store
        self.services = services
        self.gateway = gateway
        self.events = events
        self.build_chain = ChainBuilder(services)
        self.channel = services.config.state.key_prefix + "reload"
        self.instance = uuid.uuid4().hex
        self.ready = False

    async def reload(self) -> None:
        """Compile what the store holds now and swap it in."""
        store = self.store
        self.services.load_directory(await store.list_consumers(), await store.list_plans(), await store.api_keys())
        published = await store.list_published()
        self.gateway.swap(RoutingTable.compile(published, self.build_chain))
        self.events.load(published)  # event contracts: validators and chains of /events/{contract}/v{major}
        self.ready = True

    async def changed(self) -> None:
        """A change made through this instance: reload here, then tell the others (when they share Redis)."""
        await self.reload()
        redis = self.services.redis
        if redis is not None:
            try:
                await redis.publish(self.channel, self.instance)
            except Exception:  # the change is stored; the others catch up at their next notice or restart
                log.warning("could not notify other gateway instances of a change", exc_info=True)

    async def follow(self) -> None:
        """Reload whenever another instance announces a change (Redis pub/sub)."""
        while True:
            try:
                pubsub = self.services.redis.pubsub()
                await pubsub.subscribe(self.channel)
                await self.reload()  # whatever was missed while not subscribed
                async for message in pubsub.listen():
                    if message.get("type") == "message" and message.get("data", b"").decode() != self.instance:
                        await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("lost the reload channel; resubscribing", exc_info=True)
                await asyncio.sleep(1.0)


def create_app(config: GatewayConfig) -> Litestar:
    """The whole govgate server for one configuration."""
    services = Services(config)
    store = open_store(config.store)
    registry = _registry(config, store)
    gateway = Gateway(services.pipeline, services.upstreams, unrouted=services.metrics.count_unrouted)
    events = EventsGateway(config, ChainBuilder(services), services.pipeline)  # /events/: CloudEvents
    reloader = Reloader(store, services, gateway, events)
    registry.on_change(reloader.changed)
    webhook_secret = services.webhook_secret()
    tasks: list[asyncio.Task[None]] = []

    async def write_usage(records: list[Any]) -> None:
        await store.record_usage([Usage(consumer=r.consumer, contract=r.contract, major=r.major,
                                        operation=r.operation_id, count=r.count, errors=r.errors,
                                        first_seen=r.first_seen, last_seen=r.last_seen) for r in records])

    async def startup() -> None:
        await store.open()
        await reloader.reload()
        tasks.append(asyncio.create_task(services.usage.run(write_usage, config.usage_flush_seconds)))
        tasks.append(asyncio.create_task(webhooks.run(store, webhook_secret)))
        if services.redis is not None:
            tasks.append(asyncio.create_task(reloader.follow()))

    async def shutdown() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task  # the usage task flushes what is left
        await services.close()
        await store.close()

    def provide(value: Any) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    app = Litestar(
        route_handlers=[healthz, readyz, metrics, oauth.token, oauth.jwks,
                        registry_router(registry, services.registry_verifier, webhook_secret),
                        events_admin_router(events, registry, services.registry_verifier)],
        dependencies={"services": provide(services), "registry": provide(registry), "gateway": provide(gateway),
                      "events": provide(events), "reloader": provide(reloader)},
        on_startup=[startup],
        on_shutdown=[shutdown],
        middleware=[correlation_middleware(services.correlation)],
        exception_handlers={Exception: problem_response},
        openapi_config=OpenAPIConfig(
            title="govgate registry", version="0.1.0", path="/registry",
            description="Contracts, versions and publishing. Errors are RFC 9457 problem+json.",
        ),
        request_max_body_size=None,  # the registry and the gateway enforce their own limits
        debug=False,
    )
    app.asgi_handler = dispatch(app.asgi_handler, gateway, events, max_header_bytes=config.max_header_bytes)
    return app


def _registry(config: GatewayConfig, store: Store) -> Registry:
    ruleset = load_ruleset(config.lint_ruleset)
    approval_policy = Path(config.approval_policy) if config.approval_policy \
        else Path(str(files("policies").joinpath("approval-policy.yaml")))
    return Registry(store, min_sunset_days=config.min_sunset_days, review=config.review_required,
                    publish_requires_verification=tuple(config.publish_requires_verification),
                    linter=lambda document, kind: msgspec.to_builtins(lint(document, kind=kind, ruleset=ruleset)),
                    approvals=load_policy(approval_policy))


def dispatch(litestar_handler: ASGIApp, gateway: Gateway, events: ASGIApp | None = None, *,
             max_header_bytes: int = 32 * 1024) -> ASGIApp:
    """Governed calls go straight to the gateway; the registry and probes go through Litestar's router.

    A Litestar mount at "/" would shadow the registry's path-parameter routes, and the hot path
    gains nothing from Litestar's per-request machinery. Oversized headers are refused here,
    for every path, before anything reads them.
    """

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and sum(len(n) + len(v) for n, v in scope["headers"]) > max_header_bytes:
            pipeline = gateway.pipeline
            problem = HEADER_TOO_LARGE(f"request headers are limited to {max_header_bytes} bytes in all",
                                       headers={"Connection": "close"})
            await pipeline.refuse(send, pipeline.context(scope), problem, instance_of(scope))
        elif scope["type"] != "http":
            await litestar_handler(scope, receive, send)
        elif (first := scope["path"].partition("/")[2].partition("/")[0]) == "events" and events is not None:
            await events(scope, receive, send)  # CloudEvents ingestion and consumer groups (gateway/events/)
        elif first not in OWN_SEGMENTS:
            await gateway(scope, receive, send)
        else:
            await litestar_handler(scope, receive, send)

    return handler


def from_environment() -> Litestar:
    """App factory for a server that imports by name: config from the environment."""
    raw = os.environ.get(CONFIG_ENV)
    config = msgspec.json.decode(raw, type=GatewayConfig) if raw else GatewayConfig()
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # the server may have configured the root logger already (granian does, at INFO): ours follow our setting
    logging.getLogger("govgate").setLevel(config.log_level.upper())
    return create_app(config)


@get("/healthz", include_in_schema=False, sync_to_thread=False)
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/readyz", include_in_schema=False, sync_to_thread=False)
def readyz(reloader: Reloader, gateway: Gateway, events: EventsGateway) -> Response[dict[str, Any]]:
    """Readiness: contracts are loaded and routes compiled."""
    if not reloader.ready:
        return Response({"status": "loading"}, status_code=503)
    table = gateway.table
    return Response({"status": "ready", "apis": len(table.apis), "operations": len(table.routes()),
                     "event_streams": len(events.routes), "failed": {**table.failed, **events.failed}})


@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics(services: Services) -> Response[bytes]:
    """Prometheus exposition of the gateway's metrics."""
    services.refresh_gauges()
    body, content_type = services.metrics.render()
    return Response(body, media_type=content_type)


def correlation_middleware(correlation: CorrelationIdPolicy) -> Any:
    """Give every non-gateway request a correlation id and echo it (the gateway does its own)."""
    header = correlation.header.encode()

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            correlation_id = correlation.assign(headers)
            scope.setdefault("state", {})["correlation_id"] = correlation_id
            audit_correlation.set(correlation_id)  # audit records written for this request carry it

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), (header, correlation_id.encode())]
                await send(message)

            await app(scope, receive, send_with_id)

        return middleware

    return factory


def problem_response(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Every error of the Litestar routes as problem+json."""
    correlation_id = request.scope.get("state", {}).get("correlation_id", "")
    if isinstance(exc, Problem):
        problem = exc
    elif isinstance(exc, HTTPException):
        extra = exc.extra if isinstance(exc.extra, list) else [exc.extra] if exc.extra else []
        errors = [{"in": e.get("source", "request"), "pointer": f"/{e['key']}" if e.get("key") else "",
                   "message": e.get("message", "")} for e in extra if isinstance(e, dict)]
        problem = Problem(exc.detail, errors=errors, headers=dict(exc.headers or {}), status=exc.status_code,
                          slug=_FRAMEWORK_SLUGS.get(exc.status_code, "error"), title=exc.detail)
    else:
        log.exception("unexpected error", extra={"correlation_id": correlation_id})
        problem = internal_error()
    body = problem.render(correlation_id=correlation_id, instance=request.url.path)
    return Response(body, status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=problem.headers)
