"""`/events/{contract}/v{major}`: CloudEvents in, consumer groups out, over the contract's Redis stream.

    POST /events/{c}/v{m}                  publish (structured, binary or batch): 202 receipts, 200 duplicates
    GET  /events/{c}/v{m}?group=G&count=N  read through the caller's consumer group G (never blocks)
    POST /events/{c}/v{m}/ack              {"group": G, "ids": [...]}: acknowledge entries (`replay:<id>` ones too)
    GET  /events/{c}/v{m}/asyncapi.json    the contract's AsyncAPI 3.0 document

Like governed calls, this is plain ASGI with everything compiled when contracts load: the
validator per contract major and the same authentication, authorization and rate limit
policies the API routes use (authorization asks for `events:publish` or `events:consume`).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Annotated, Any
from urllib.parse import parse_qs

import msgspec
from litestar.types import Receive, Scope, Send
from prometheus_client import Counter

from gateway.chain import ChainBuilder
from gateway.config import GatewayConfig
from gateway.proxy import read_body, send_problem  # the governed path's problem rendering and body reader
from policies.authentication import AuthenticationPolicy
from policies.authorization import AuthorizationPolicy
from policies.context import Policy, RequestContext
from policies.correlation_id import CorrelationIdPolicy
from policies.errors import GatewayProblem
from policies.events_dead_letters import DeadLetters
from policies.events_envelope import EventValidator, parse
from policies.events_stream import BACKEND_ERRORS, EventStream, StreamKeys, valid_id
from policies.observability import ObservabilityPolicy
from policies.rate_limit import RateLimitPolicy
from registry import asyncapi
from registry.model import Contract, SemVer, Version

log = logging.getLogger("govgate.events")
PREFIX = "/events/"
_PATH = re.compile(r"^/events/([a-z][a-z0-9]*(?:[.-][a-z0-9]+)*)/v(0|[1-9][0-9]{0,5})(/ack|/asyncapi\.json)?/?$")
_NAME = r"^[A-Za-z0-9._-]{1,64}$"
_GROUP = re.compile(_NAME)
JSON = b"application/json"


class AckRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of an acknowledgement."""

    group: Annotated[str, msgspec.Meta(pattern=_NAME)]
    ids: Annotated[list[Annotated[str, msgspec.Meta(pattern=r"^(replay:)?\d{1,20}-\d{1,20}$")]],
                   msgspec.Meta(max_length=1000)]
    """Stream ids as delivered: `<ms>-<seq>`, or `replay:<ms>-<seq>` for an entry replayed to the group."""


class EventOperation(msgspec.Struct, frozen=True):
    """What metrics, the access log and usage records call a request on a stream (as a route of an API)."""

    contract: str
    version: str
    major: int
    operation_id: str  # publish | consume | acknowledge | asyncapi
    upstream: None = None


ACTIONS = {("POST", ""): "publish", ("GET", ""): "consume", ("POST", "/ack"): "acknowledge",
           ("GET", "/asyncapi.json"): "asyncapi"}


class EventRoute:
    """One served event contract major: its validator, keys and policy chains."""

    __slots__ = ("contract", "version", "validator", "keys", "schema", "publish", "consume", "identify", "operations")

    def __init__(self, contract: Contract, version: Version, schema: dict[str, Any], validator: EventValidator,
                 keys: StreamKeys | None, publish: list[Policy], consume: list[Policy], identify: list[Policy]) -> None:
        self.contract = contract
        self.version = version
        self.schema = schema
        self.validator = validator
        self.keys = keys
        self.publish = publish
        self.consume = consume
        self.identify = identify
        self.operations = {name: EventOperation(contract.name, version.version, version.major, name)
                           for name in ACTIONS.values()}


class EventsGateway:
    """Routes /events/ requests of every published event contract."""

    def __init__(self, config: GatewayConfig, chain: ChainBuilder, correlation: CorrelationIdPolicy) -> None:
        self.gateway_config = config
        self.config = config.events
        self.chain = chain
        self.correlation = correlation
        self.correlation_header = correlation.header.encode()
        self.stream = EventStream(chain.redis, config.state.key_prefix, config.events) if chain.redis else None
        self.dead_letters = DeadLetters(self.stream) if self.stream is not None else None
        self.routes: dict[tuple[str, int], EventRoute] = {}
        self.failed: dict[str, str] = {}
        self.authentication = AuthenticationPolicy(config.authentication, chain.verifier, chain.directory)
        # requests on streams are counted, logged and recorded as usage (who publishes or reads what) like API calls
        self.observability = ObservabilityPolicy(config.observability, chain.metrics, chain.usage, upstream=None)
        self.counter = Counter("govgate_events_total", "Events by contract major and outcome",
                               ["contract", "major", "outcome"], registry=chain.metrics.registry)

    def load(self, published: list[tuple[Contract, Version, str]]) -> None:
        """Compile the validator and chains of every event contract major; within a major the newest serves."""
        newest: dict[tuple[str, int], tuple[Contract, Version, str]] = {}
        for contract, version, document in published:
            key = (contract.name, version.major)
            if contract.kind == "event" and (key not in newest or SemVer.parse(version.version)
                                             > SemVer.parse(newest[key][1].version)):
                newest[key] = (contract, version, document)
        routes, failed = {}, {}
        for key, (contract, version, document) in newest.items():
            try:
                routes[key] = self._route(contract, version, json.loads(document))
            except Exception as exc:  # one bad schema must not take the other streams down
                log.exception("cannot compile event contract %s v%s", *key)
                failed[f"{contract.name}@{version.version}"] = f"{type(exc).__name__}: {exc}"[:300]
        self.routes, self.failed = routes, failed

    def _route(self, contract: Contract, version: Version, schema: dict[str, Any]) -> EventRoute:
        config, name, major = self.gateway_config, contract.name, version.major
        limit = [RateLimitPolicy(config.rate_limit, self.chain.limiter, contract=name, major=major,
                                 operation_id="events")] if config.rate_limit.enabled else []

        def allowed(scope: str) -> list[Policy]:
            return [self.authentication, AuthorizationPolicy(config.authorization, contract=name, major=major,
                                                             requirement=[{"oauth2": [scope]}]), *limit]

        keys = self.stream.keys(name, major) if self.stream is not None else None
        return EventRoute(contract, version, schema, EventValidator(schema, check_formats=self.config.check_formats),
                          keys, allowed(asyncapi.PUBLISH_SCOPE), allowed(asyncapi.CONSUME_SCOPE), [self.authentication])

    def route(self, contract: str, major: int) -> EventRoute | None:
        """The served route of a contract major, if any."""
        return self.routes.get((contract, major))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        path = scope["path"]
        client = scope.get("client")
        ctx = RequestContext(method=scope["method"], path=path, raw_path=path, headers=headers,
                             query_string=scope.get("query_string", b"").decode("latin-1"),
                             client=client[0] if client else "unknown", scheme=scope.get("scheme", "http"),
                             host=headers.get("host", ""))
        ctx.correlation_id = self.correlation.assign(headers)
        try:
            status, body = await self._handle(ctx, receive)
        except Exception as exc:
            if not isinstance(exc, GatewayProblem):  # a bug: answer with a problem, keep the process up
                log.exception("unexpected error", extra={"correlation_id": ctx.correlation_id})
                exc = GatewayProblem(500, "internal-error", "Internal error",
                                     "the gateway failed; quote the correlation id")
            ctx.problem, ctx.response_status = exc, exc.status
            await send_problem(send, exc, ctx, self.correlation_header, path)
            self._finish(ctx)
            return
        ctx.response_status, ctx.response_body = status, body
        response_headers = [(b"content-type", JSON), (self.correlation_header, ctx.correlation_id.encode()),
                            (b"content-length", str(len(body)).encode())]
        response_headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in ctx.add_headers)
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
        self._finish(ctx)

    def _finish(self, ctx: RequestContext) -> None:
        if ctx.route is None:
            return  # unrouted: nothing to attribute it to
        try:
            self.observability.on_finish(ctx)
        except Exception:  # recording must never turn an answer into an error
            log.exception("could not record an events request", extra={"correlation_id": ctx.correlation_id})

    async def _handle(self, ctx: RequestContext, receive: Receive) -> tuple[int, bytes]:
        found = _PATH.match(ctx.path) if self.config.enabled else None
        if found is None:
            raise GatewayProblem(404, "not-found", "Not found",
                                 "event streams are at /events/{contract}/v{major}[/ack|/asyncapi.json]")
        name, major, action = found.group(1), int(found.group(2)), found.group(3) or ""
        route = self.route(name, major)
        if route is None:
            raise GatewayProblem(404, "not-found", "Not found", f"no published event contract {name!r} v{major}")
        operation = ACTIONS.get((ctx.method, action))
        if operation is None:
            allowed = ", ".join(method for method, suffix in ACTIONS if suffix == action)
            raise GatewayProblem(405, "method-not-allowed", "Method not allowed",
                                 f"{ctx.method} is not allowed here; allowed: {allowed}", headers={"Allow": allowed})
        ctx.route = route.operations[operation]
        if action == "/asyncapi.json":
            await _run(route.identify, ctx)
            server = f"{ctx.scheme}://{ctx.host}" if ctx.host else None
            return 200, msgspec.json.encode(asyncapi.document(
                name, route.version.version, major, route.schema, description=route.contract.description,
                owner=route.contract.owner, server=server))
        if self.stream is None or route.keys is None:
            raise GatewayProblem(503, "events-need-redis", "Events need Redis",
                                 "this gateway keeps its state in memory, which cannot store events durably; "
                                 "configure state.backend: redis")
        publishing = operation == "publish"
        await _run(route.publish if publishing else route.consume, ctx)
        caller = ctx.consumer.id if ctx.consumer is not None else "anonymous"
        try:
            if publishing:
                return await self._publish(route, ctx, caller, await self._body(ctx, receive))
            if action == "/ack":
                return await self._ack(route, caller, await self._body(ctx, receive))
            return await self._read(route, ctx, caller)
        except BACKEND_ERRORS as exc:
            log.warning("event stream unavailable: %r", exc, extra={"correlation_id": ctx.correlation_id})
            raise GatewayProblem(503, "events-unavailable", "Event stream unavailable",
                                 "the event store did not answer; nothing was stored by this request "
                                 "unless a retry answers 200 with its receipt", headers={"Retry-After": "1"}) from exc

    async def _publish(self, route: EventRoute, ctx: RequestContext, caller: str, body: bytes) -> tuple[int, bytes]:
        contract, major = route.contract.name, str(route.version.major)
        if route.version.state == "retired":
            raise GatewayProblem(410, "retired", "Gone", f"{contract} v{major} is retired: it takes no new events")
        events, batch = parse(ctx.headers, body, max_batch=self.config.max_batch)
        rejected, errors = [], []
        for index, event in enumerate(events):
            found = route.validator.errors(event, index if batch else None)
            if found:
                rejected.append((event, found))
                errors += found
        if errors:
            self.counter.labels(contract, major, "invalid").inc(len(rejected))
            if self.config.dead_letter_invalid:
                try:
                    await self.stream.dead_letter_invalid(route.keys, rejected, producer=caller,
                                                          correlation=ctx.correlation_id)
                except BACKEND_ERRORS:
                    log.warning("could not keep refused events as dead letters", exc_info=True)
            raise GatewayProblem(400, "invalid-event", "Event does not match the contract",
                                 f"{_count(len(errors), 'error')} in {_count(len(rejected), 'event')}; "
                                 "nothing was stored", errors=errors)
        receipts = await self.stream.append(route.keys, events, producer=caller, correlation=ctx.correlation_id)
        fresh = sum(1 for r in receipts if not r.duplicate)
        self.counter.labels(contract, major, "appended").inc(fresh)
        if fresh < len(receipts):
            self.counter.labels(contract, major, "duplicate").inc(len(receipts) - fresh)
        body = msgspec.json.encode({"receipts": receipts} if batch else receipts[0])
        return (202 if fresh else 200), body

    async def _read(self, route: EventRoute, ctx: RequestContext, caller: str) -> tuple[int, bytes]:
        query = parse_qs(ctx.query_string)
        group, worker = query.get("group", [""])[-1], query.get("consumer", ["default"])[-1]
        count, start = query.get("count", ["10"])[-1], query.get("from", ["earliest"])[-1]
        errors = [{"in": "query", "pointer": f"/{name}", "message": message} for name, bad, message in (
            ("group", not _GROUP.match(group), "a group name of 1-64 letters, digits, '.', '_' or '-' is required"),
            ("consumer", not _GROUP.match(worker), "1-64 letters, digits, '.', '_' or '-'"),
            ("count", not count.isdigit() or not 1 <= int(count) <= self.config.max_read_count,
             f"an integer from 1 to {self.config.max_read_count}"),
            ("from", start not in ("earliest", "latest"), "earliest or latest")) if bad]
        if errors:
            raise GatewayProblem(400, "invalid-parameter", "Invalid query parameters",
                                 f"{len(errors)} invalid parameter(s)", errors=errors)
        deliveries, dead = await self.stream.read(route.keys, f"{caller}:{group}", worker, int(count),
                                                  start="0" if start == "earliest" else "$")
        labels = (route.contract.name, str(route.version.major))
        self.counter.labels(*labels, "delivered").inc(len(deliveries))
        if dead:
            self.counter.labels(*labels, "dead-lettered").inc(dead)
        return 200, msgspec.json.encode({"group": group, "events": deliveries, "deadLettered": dead})

    async def _ack(self, route: EventRoute, caller: str, body: bytes) -> tuple[int, bytes]:
        try:
            request = msgspec.json.decode(body, type=AckRequest)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise GatewayProblem(400, "invalid-body", "Invalid acknowledgement",
                                 'send {"group": "<group>", "ids": ["<stream id>", …]}',
                                 errors=[{"in": "body", "pointer": "", "message": str(exc)}]) from None
        errors = [{"in": "body", "pointer": f"/ids/{i}", "message": "both parts of a stream id must be below 2^64"}
                  for i, entry_id in enumerate(request.ids) if not valid_id(entry_id)]
        if errors:  # Redis would refuse them with an error, which must not look like an outage (503)
            raise GatewayProblem(400, "invalid-body", "Invalid acknowledgement", "an id is out of range",
                                 errors=errors)
        acknowledged = await self.stream.ack(route.keys, f"{caller}:{request.group}", request.ids)
        self.counter.labels(route.contract.name, str(route.version.major), "acknowledged").inc(acknowledged)
        return 200, msgspec.json.encode({"group": request.group, "acknowledged": acknowledged})

    async def _body(self, ctx: RequestContext, receive: Receive) -> bytes:
        return await read_body(ctx.headers, receive, limit=self.gateway_config.max_body_bytes,
                               timeout=self.gateway_config.body_timeout_seconds)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


async def _run(policies: list[Policy], ctx: RequestContext) -> None:
    for policy in policies:
        outcome = policy.on_request(ctx)
        if outcome is not None:
            await outcome
