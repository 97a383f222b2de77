"""`/events/{contract}/v{major}`: CloudEvents in, consumer groups out, over the contract's Redis stream.

    POST /events/{c}/v{m}                  publish (structured, binary or batch): 202 receipts, 200 duplicates
    GET  /events/{c}/v{m}?group=G&count=N  read through the caller's consumer group G (never blocks)
    POST /events/{c}/v{m}/ack              {"group": G, "ids": [...]}: acknowledge entries (`replay:<id>` ones too)
    GET  /events/{c}/v{m}/asyncapi.json    the contract's AsyncAPI 3.0 document

Each action is a route run by the same pipeline as governed calls (gateway/pipeline.py), with
a chain from the same table (gateway/chain.py): observability, authentication, authorization
(`events:publish` or `events:consume`) and the rate limit; its terminal acts on the stream.
The validator of each contract major and its chains are compiled when contracts load.
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
from gateway.events.dead_letters import DeadLetters
from gateway.events.envelope import EventValidator, parse
from gateway.events.stream import BACKEND_ERRORS, EventStream, StreamKeys, valid_id
from gateway.pipeline import Pipeline, Route, Terminal, instance_of
from gateway.routing import Operation
from policies.context import RequestContext
from registry import asyncapi
from registry.model import Contract, SemVer, Version
from registry.problems import METHOD_NOT_ALLOWED, NOT_FOUND, ProblemType

log = logging.getLogger("govgate.events")
PREFIX = "/events/"
_PATH = re.compile(r"^/events/([a-z][a-z0-9]*(?:[.-][a-z0-9]+)*)/v(0|[1-9][0-9]{0,5})(/ack|/asyncapi\.json)?/?$")
_NAME = r"^[A-Za-z0-9._-]{1,64}$"
_GROUP = re.compile(_NAME)
JSON = "application/json"

EVENTS_NEED_REDIS = ProblemType(503, "events-need-redis", "Events need Redis")
EVENTS_UNAVAILABLE = ProblemType(503, "events-unavailable", "Event stream unavailable")
RETIRED = ProblemType(410, "retired", "Gone")
INVALID_EVENT = ProblemType(400, "invalid-event", "Event does not match the contract")
INVALID_PARAMETER = ProblemType(400, "invalid-parameter", "Invalid query parameters")
INVALID_ACK = ProblemType(400, "invalid-body", "Invalid acknowledgement")


class AckRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of an acknowledgement."""

    group: Annotated[str, msgspec.Meta(pattern=_NAME)]
    ids: Annotated[list[Annotated[str, msgspec.Meta(pattern=r"^(replay:)?\d{1,20}-\d{1,20}$")]],
                   msgspec.Meta(max_length=1000)]
    """Stream ids as delivered: `<ms>-<seq>`, or `replay:<ms>-<seq>` for an entry replayed to the group."""


# (method, path suffix) -> the action, which names the route's operation in metrics, logs and usage
ACTIONS = {("POST", ""): "publish", ("GET", ""): "consume", ("POST", "/ack"): "acknowledge",
           ("GET", "/asyncapi.json"): "asyncapi"}
# the policies of each action's chain: the same builders as the API routes'; all actions share one rate
# limit per contract major, and authorization asks for the action's scope
_GOVERNED = frozenset({"observability", "authentication", "authorization", "rate_limit"})
_CHAINS = {"publish": (asyncapi.PUBLISH_SCOPE, _GOVERNED), "consume": (asyncapi.CONSUME_SCOPE, _GOVERNED),
           "acknowledge": (asyncapi.CONSUME_SCOPE, _GOVERNED),
           "asyncapi": (None, frozenset({"observability", "authentication"}))}


class EventRoute:
    """One served event contract major: its validator, keys and one route per action."""

    __slots__ = ("contract", "version", "validator", "keys", "schema", "actions")

    def __init__(self, contract: Contract, version: Version, schema: dict[str, Any], validator: EventValidator,
                 keys: StreamKeys | None, actions: dict[str, Route]) -> None:
        self.contract = contract
        self.version = version
        self.schema = schema
        self.validator = validator
        self.keys = keys
        self.actions = actions


class EventsGateway:
    """Routes /events/ requests of every published event contract."""

    def __init__(self, config: GatewayConfig, build_chain: ChainBuilder, pipeline: Pipeline) -> None:
        self.gateway_config = config
        self.config = config.events
        self.build_chain = build_chain
        self.pipeline = pipeline
        services = build_chain.services
        self.stream = EventStream(services.redis, config.state.key_prefix, config.events) if services.redis else None
        self.dead_letters = DeadLetters(self.stream) if self.stream is not None else None
        self.routes: dict[tuple[str, int], EventRoute] = {}
        self.failed: dict[str, str] = {}
        self.counter = Counter("govgate_events_total", "Events by contract major and outcome",
                               ["contract", "major", "outcome"], registry=services.metrics.registry)

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
        actions = {}
        for (method, suffix), action in ACTIONS.items():
            scope, policies = _CHAINS[action]
            operation = {"security": [{"oauth2": [scope]}]} if scope else {}
            spec = Operation(contract, version, {}, suffix or "/", {}, method.lower(), operation, "events")
            actions[action] = Route(contract.name, version.version, version.major, method.lower(), suffix or "/",
                                    action, None, self.build_chain(spec, policies),
                                    prefix=f"/events/{contract.name}/v{version.major}")
        keys = self.stream.keys(contract.name, version.major) if self.stream is not None else None
        return EventRoute(contract, version, schema, EventValidator(schema, check_formats=self.config.check_formats),
                          keys, actions)

    def route(self, contract: str, major: int) -> EventRoute | None:
        """The served route of a contract major, if any."""
        return self.routes.get((contract, major))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.pipeline.context(scope)
        found = _PATH.match(scope["path"]) if self.config.enabled else None
        if found is None:
            problem = NOT_FOUND("event streams are at /events/{contract}/v{major}[/ack|/asyncapi.json]")
            return await self.pipeline.refuse(send, ctx, problem, instance_of(scope))
        name, major, suffix = found.group(1), int(found.group(2)), found.group(3) or ""
        route = self.route(name, major)
        if route is None:
            problem = NOT_FOUND(f"no published event contract {name!r} v{major}")
            return await self.pipeline.refuse(send, ctx, problem, instance_of(scope))
        action = ACTIONS.get((ctx.method, suffix))
        if action is None:
            allowed = ", ".join(method for method, known in ACTIONS if known == suffix)
            problem = METHOD_NOT_ALLOWED(f"{ctx.method} is not allowed here; allowed: {allowed}",
                                         headers={"Allow": allowed})
            return await self.pipeline.refuse(send, ctx, problem, instance_of(scope))
        if action != "asyncapi" and (self.stream is None or route.keys is None):
            problem = EVENTS_NEED_REDIS("this gateway keeps its state in memory, which cannot store events "
                                        "durably; configure state.backend: redis")
            return await self.pipeline.refuse(send, ctx, problem, instance_of(scope))
        await self.pipeline.run(scope, receive, send, ctx, route.actions[action], self._terminal(route, action))

    def _terminal(self, route: EventRoute, action: str) -> Terminal:
        async def terminal(ctx: RequestContext) -> None:
            ctx.response_status, ctx.response_body = await self._act(route, action, ctx)
            ctx.response_headers = [("content-type", JSON)]

        return terminal

    async def _act(self, route: EventRoute, action: str, ctx: RequestContext) -> tuple[int, bytes]:
        if action == "asyncapi":
            server = f"{ctx.scheme}://{ctx.host}" if ctx.host else None
            return 200, msgspec.json.encode(asyncapi.document(
                route.contract.name, route.version.version, route.version.major, route.schema,
                description=route.contract.description, owner=route.contract.owner, server=server))
        assert self.stream is not None and route.keys is not None  # refused before the chain otherwise
        caller = ctx.consumer.id if ctx.consumer is not None else "anonymous"
        try:
            if action == "publish":
                return await self._publish(route, self.stream, route.keys, ctx, caller)
            if action == "acknowledge":
                return await self._ack(route, self.stream, route.keys, caller, ctx.body)
            return await self._read(route, self.stream, route.keys, ctx, caller)
        except BACKEND_ERRORS as exc:
            log.warning("event stream unavailable: %r", exc, extra={"correlation_id": ctx.correlation_id})
            raise EVENTS_UNAVAILABLE("the event store did not answer; nothing was stored by this request "
                                     "unless a retry answers 200 with its receipt", headers={"Retry-After": "1"}) from exc

    async def _publish(self, route: EventRoute, stream: EventStream, keys: StreamKeys, ctx: RequestContext,
                       caller: str) -> tuple[int, bytes]:
        contract, major = route.contract.name, str(route.version.major)
        if route.version.state == "retired":
            raise RETIRED(f"{contract} v{major} is retired: it takes no new events")
        events, batch = parse(ctx.headers, ctx.body, max_batch=self.config.max_batch)
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
                    await stream.dead_letter_invalid(keys, rejected, producer=caller,
                                                          correlation=ctx.correlation_id)
                except BACKEND_ERRORS:
                    log.warning("could not keep refused events as dead letters", exc_info=True)
            raise INVALID_EVENT(f"{_count(len(errors), 'error')} in {_count(len(rejected), 'event')}; "
                                "nothing was stored", errors=errors)
        receipts = await stream.append(keys, events, producer=caller, correlation=ctx.correlation_id) or []
        fresh = sum(not r.duplicate for r in receipts)
        self.counter.labels(contract, major, "appended").inc(fresh)
        if fresh < len(receipts):
            self.counter.labels(contract, major, "duplicate").inc(len(receipts) - fresh)
        body = msgspec.json.encode({"receipts": receipts} if batch else receipts[0])
        return (202 if fresh else 200), body

    async def _read(self, route: EventRoute, stream: EventStream, keys: StreamKeys, ctx: RequestContext,
                    caller: str) -> tuple[int, bytes]:
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
            raise INVALID_PARAMETER(f"{len(errors)} invalid parameter(s)", errors=errors)
        deliveries, dead = await stream.read(keys, f"{caller}:{group}", worker, int(count),
                                                  start="0" if start == "earliest" else "$")
        labels = (route.contract.name, str(route.version.major))
        self.counter.labels(*labels, "delivered").inc(len(deliveries))
        if dead:
            self.counter.labels(*labels, "dead-lettered").inc(dead)
        return 200, msgspec.json.encode({"group": group, "events": deliveries, "deadLettered": dead})

    async def _ack(self, route: EventRoute, stream: EventStream, keys: StreamKeys, caller: str,
                   body: bytes) -> tuple[int, bytes]:
        try:
            request = msgspec.json.decode(body, type=AckRequest)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise INVALID_ACK('send {"group": "<group>", "ids": ["<stream id>", …]}',
                              errors=[{"in": "body", "pointer": "", "message": str(exc)}]) from None
        errors = [{"in": "body", "pointer": f"/ids/{i}", "message": "both parts of a stream id must be below 2^64"}
                  for i, entry_id in enumerate(request.ids) if not valid_id(entry_id)]
        if errors:  # Redis would refuse them with an error, which must not look like an outage (503)
            raise INVALID_ACK("an id is out of range", errors=errors)
        acknowledged = await stream.ack(keys, f"{caller}:{request.group}", request.ids)
        self.counter.labels(route.contract.name, str(route.version.major), "acknowledged").inc(acknowledged)
        return 200, msgspec.json.encode({"group": request.group, "acknowledged": acknowledged})


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
