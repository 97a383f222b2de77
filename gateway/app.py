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
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway import oauth
from gateway.chain import ChainBuilder
from gateway.config import GatewayConfig
from gateway.events import EventsGateway
from gateway.events_admin import events_admin_router
from gateway.problems import PROBLEM_MEDIA_TYPE, problem_body
from gateway.proxy import Gateway
from gateway.routing import RoutingTable
from gateway.upstream import Upstream
from policies.correlation_id import CorrelationIdPolicy
from registry.api import registry_router
from registry import webhooks
from registry.approvals import load_policy
from registry.lint import lint, load_ruleset
from registry.audit import correlation_id as audit_correlation
from registry.errors import RegistryError
from registry.model import RESERVED_NAMES, Usage
from registry.service import Registry
from registry.store import open_store

log = logging.getLogger("govgate")
CONFIG_ENV = "GOVGATE_CONFIG_JSON"
# served by Litestar handlers; every other path is a governed call and the gateway tags it itself
OWN_SEGMENTS = RESERVED_NAMES | {".well-known"}  # first path segments: /metrics.sales/v1 is a contract

_SLUGS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
          409: "conflict", 413: "payload-too-large", 415: "unsupported-media-type", 422: "invalid-document"}


def create_app(config: GatewayConfig) -> Litestar:
    """The whole govgate server for one configuration."""
    correlation = CorrelationIdPolicy(config.correlation_id)
    upstreams = {name: Upstream(name, upstream, correlation_header=correlation.header)
                 for name, upstream in config.upstreams.items()}
    store = open_store(config.store)
    ruleset = load_ruleset(config.lint_ruleset)
    registry = Registry(store, min_sunset_days=config.min_sunset_days, review=config.review_required,
                        publish_requires_verification=tuple(config.publish_requires_verification),
                        linter=lambda document, kind: msgspec.to_builtins(lint(document, kind=kind, ruleset=ruleset)),
                        approvals=load_policy(Path(config.approval_policy) if config.approval_policy
                                              else Path(str(files("policies").joinpath("approval-policy.yaml")))))
    chain = ChainBuilder(config)
    gateway = Gateway(correlation, upstreams, config.max_body_bytes, unrouted=chain.metrics.count_unrouted,
                      body_timeout=config.body_timeout_seconds)
    events = EventsGateway(config, chain, correlation)  # /events/: CloudEvents in, consumer groups out

    instance = uuid.uuid4().hex

    async def reload() -> None:
        chain.load_directory(await store.list_consumers(), await store.list_plans(), await store.api_keys())
        published = await store.list_published()
        gateway.swap(RoutingTable.compile(published, chain))
        events.load(published)  # event contracts: validators and chains of /events/{contract}/v{major}

    async def changed() -> None:
        """A change made through this instance: reload here, then tell the others (when they share Redis)."""
        await reload()
        if chain.redis is not None:
            try:
                await chain.redis.publish(config.state.key_prefix + "reload", instance)
            except Exception:  # the change is stored; the others catch up at their next notice or restart
                log.warning("could not notify other gateway instances of a change", exc_info=True)

    async def follow_changes() -> None:
        """Reload whenever another instance announces a change (Redis pub/sub)."""
        while True:
            try:
                pubsub = chain.redis.pubsub()
                await pubsub.subscribe(config.state.key_prefix + "reload")
                await reload()  # whatever was missed while not subscribed
                async for message in pubsub.listen():
                    if message.get("type") == "message" and message.get("data", b"").decode() != instance:
                        await reload()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("lost the reload channel; resubscribing", exc_info=True)
                await asyncio.sleep(1.0)

    async def write_usage(records: list[Any]) -> None:
        await store.record_usage([Usage(consumer=r.consumer, contract=r.contract, major=r.major,
                                        operation=r.operation_id, count=r.count, errors=r.errors,
                                        first_seen=r.first_seen, last_seen=r.last_seen) for r in records])

    async def startup(app: Litestar) -> None:
        await store.open()
        await reload()
        app.state.tasks = [asyncio.create_task(chain.usage.run(write_usage, config.usage_flush_seconds))]
        app.state.tasks.append(asyncio.create_task(webhooks.run(store, webhook_secret)))
        if chain.redis is not None:
            app.state.tasks.append(asyncio.create_task(follow_changes()))
        app.state.ready = True

    async def shutdown(app: Litestar) -> None:
        for task in app.state.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task  # the usage task flushes what is left
        await gateway.close()
        await chain.close()
        await store.close()

    registry.on_change(changed)
    key_bytes = chain.signing_key.private_key.private_bytes_raw()

    def webhook_secret(webhook_id: str) -> str:
        return webhooks.secret_for(key_bytes, webhook_id)

    app = Litestar(
        route_handlers=[healthz, readyz, metrics, registry_router, oauth.token, oauth.jwks, events_admin_router],
        state=State({"registry": registry, "gateway": gateway, "ready": False, "correlation": correlation,
                     "config": config, "signing_key": chain.signing_key, "verifier": chain.verifier,
                     "registry_verifier": chain.registry_verifier, "metrics": chain.metrics, "chain": chain, "webhook_secret": webhook_secret,
                     "events": events}),
        on_startup=[startup],
        on_shutdown=[shutdown],
        middleware=[correlation_middleware(correlation)],
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


def dispatch(litestar_handler: ASGIApp, gateway: Gateway, events: ASGIApp | None = None, *,
             max_header_bytes: int = 32 * 1024) -> ASGIApp:
    """Governed calls go straight to the gateway; the registry and probes go through Litestar's router.

    A Litestar mount at "/" would shadow the registry's path-parameter routes, and the hot path
    gains nothing from Litestar's per-request machinery. Oversized headers are refused here,
    for every path, before anything reads them.
    """

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and sum(len(n) + len(v) for n, v in scope["headers"]) > max_header_bytes:
            correlation = gateway.correlation.assign({})
            body = problem_body(431, "header-too-large", "Request header fields too large",
                                f"request headers are limited to {max_header_bytes} bytes in all",
                                correlation_id=correlation, instance=scope["path"][:512])
            await send({"type": "http.response.start", "status": 431, "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()), (gateway.correlation_header, correlation.encode()),
                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] != "http":
            await litestar_handler(scope, receive, send)
        elif (first := scope["path"].partition("/")[2].partition("/")[0]) == "events" and events is not None:
            await events(scope, receive, send)  # CloudEvents ingestion and consumer groups (gateway/events.py)
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
def readyz(state: State) -> Response[dict[str, Any]]:
    """Readiness: contracts are loaded and routes compiled."""
    if not state.ready:
        return Response({"status": "loading"}, status_code=503)
    table = state.gateway.table
    return Response({"status": "ready", "apis": len(table.apis), "operations": len(table.routes()),
                     "event_streams": len(state.events.routes), "failed": {**table.failed, **state.events.failed}})


@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics(state: State) -> Response[bytes]:
    """Prometheus exposition of the gateway's metrics."""
    state.chain.refresh_gauges()
    body, content_type = state.metrics.render()
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
    if isinstance(exc, RegistryError):
        status, title, detail, errors = exc.status, exc.title, exc.detail, exc.errors or None
        slug = exc.slug or _SLUGS.get(status, "error")
    elif isinstance(exc, HTTPException):
        status, title, detail = exc.status_code, exc.detail, exc.detail
        extra = exc.extra if isinstance(exc.extra, list) else [exc.extra] if exc.extra else []
        errors = [{"in": e.get("source", "request"), "pointer": f"/{e['key']}" if e.get("key") else "",
                   "message": e.get("message", "")} for e in extra if isinstance(e, dict)] or None
        slug = _SLUGS.get(status, "error")
    else:
        log.exception("unexpected error", extra={"correlation_id": correlation_id})
        status, slug, title, detail, errors = 500, "internal-error", "Internal error", "quote the correlation id", None
    body = problem_body(status, slug, title, detail, correlation_id=correlation_id,
                        instance=request.url.path, errors=errors)
    headers = dict(getattr(exc, "headers", None) or {})
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)
