"""`/registry/events/...`: operators (role admin) inspect and replay dead letters and rewind consumer groups.

Every replay and rewind is written to the registry's audit log (`GET /registry/audit`), with
who did it, the correlation id and what happened to each entry.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import ResponseSpec
from litestar.params import Parameter

from gateway.events import EventRoute, EventsGateway
from policies.events_dead_letters import DeadLetter, GroupInfo, Replayed
from policies.events_stream import BACKEND_ERRORS, StreamKeys
from registry.api import PROBLEMS, Problem
from registry.audit import AuditEntry
from registry.auth import ADMINS, identity
from registry.errors import InvalidRequest, NotFound, RegistryError
from registry.service import Registry

_MAJOR = re.compile(r"^v(0|[1-9][0-9]{0,5})$")
EntryId = Annotated[str, Parameter(description="a stream id, e.g. 1764316800000-0", pattern=r"^\d{1,20}-\d{1,20}$")]


# documented for clients and schemathesis, like every registry endpoint's problems
EVENT_PROBLEMS = {**PROBLEMS, 503: ResponseSpec(
    data_container=Problem, media_type="application/problem+json", generate_examples=False,
    description="Redis (the event store) cannot be reached, or this gateway keeps its state in memory")}


class EventsUnavailable(RegistryError):
    status = 503
    title = "Event stream unavailable"


class ReplayRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Why an operator replays (kept in the audit log)."""

    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000
    """Replay all: at most this many dead letters, oldest first."""


class RewindRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Deliver every entry appended since `from` to the group again."""

    from_time: datetime = msgspec.field(name="from")
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class Rewound(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The group's position after a rewind."""

    group: str
    last_delivered_id: str


class ReplaySummary(msgspec.Struct, frozen=True, kw_only=True):
    """What replaying every dead letter did."""

    replayed: list[Replayed]
    remaining: int


def _served(events: EventsGateway, contract: str, version: str) -> tuple[EventRoute, StreamKeys]:
    found = _MAJOR.match(version)
    route = events.route(contract, int(found.group(1))) if found else None
    if route is None:
        raise NotFound(f"no published event contract {contract!r} {version}")
    if events.dead_letters is None or route.keys is None:
        raise EventsUnavailable("this gateway keeps its state in memory: events need state.backend: redis")
    return route, route.keys


async def _audit(registry: Registry, request: Request[Any, Any, Any], action: str, target: str, after: Any,
                 reason: str) -> None:
    actor = (await identity(request)).subject
    await registry.store.append_audit(AuditEntry(actor=actor, action=action, target=target,
                                                 after=msgspec.to_builtins(after), reason=reason))


@get("/{contract:str}/{version:str}/dead-letters", responses=EVENT_PROBLEMS,
     summary="Dead letters of a stream, oldest first")
async def list_dead_letters(events: EventsGateway, contract: str, version: str,
                            after: Annotated[str | None, Parameter(pattern=r"^\d{1,20}-\d{1,20}$")] = None,
                            limit: Annotated[int, Parameter(ge=1, le=1000)] = 100) -> list[DeadLetter]:
    _, keys = _served(events, contract, version)
    try:
        return await events.dead_letters.list(keys, after=after, limit=limit)
    except BACKEND_ERRORS as exc:
        raise EventsUnavailable(str(exc)) from None


@get("/{contract:str}/{version:str}/dead-letters/{entry_id:str}", responses=EVENT_PROBLEMS, summary="One dead letter")
async def get_dead_letter(events: EventsGateway, contract: str, version: str, entry_id: EntryId) -> DeadLetter:
    _, keys = _served(events, contract, version)
    try:
        letter = await events.dead_letters.get(keys, entry_id)
    except BACKEND_ERRORS as exc:
        raise EventsUnavailable(str(exc)) from None
    if letter is None:
        raise NotFound(f"no dead letter {entry_id} in {contract} {version}")
    return letter


@post("/{contract:str}/{version:str}/dead-letters/{entry_id:str}/replay", responses=EVENT_PROBLEMS, status_code=200,
      summary="Replay one dead letter (re-validated against the contract if it was invalid)")
async def replay_dead_letter(events: EventsGateway, registry: Registry, request: Request[Any, Any, Any],
                             contract: str, version: str, entry_id: EntryId,
                             data: ReplayRequest | None = None) -> Replayed:
    route, keys = _served(events, contract, version)
    try:
        outcome = await events.dead_letters.replay(keys, entry_id, route.validator)
    except BACKEND_ERRORS as exc:
        raise EventsUnavailable(str(exc)) from None
    if outcome.outcome == "gone":
        raise NotFound(f"no dead letter {entry_id} in {contract} {version} (replayed or trimmed already)")
    await _audit(registry, request, "events.dead-letter-replayed", f"events/{contract}/{version}/dead-letters/"
                 f"{entry_id}", outcome, data.reason if data else "")
    return outcome


@post("/{contract:str}/{version:str}/dead-letters/replay", responses=EVENT_PROBLEMS, status_code=200,
      summary="Replay every dead letter, oldest first; those still invalid stay")
async def replay_all_dead_letters(events: EventsGateway, registry: Registry, request: Request[Any, Any, Any],
                                  contract: str, version: str, data: ReplayRequest | None = None) -> ReplaySummary:
    route, keys = _served(events, contract, version)
    data = data or ReplayRequest()
    try:
        outcomes = await events.dead_letters.replay_all(keys, route.validator, limit=data.limit)
        remaining = await events.dead_letters.count(keys)
    except BACKEND_ERRORS as exc:
        raise EventsUnavailable(str(exc)) from None
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
    await _audit(registry, request, "events.dead-letters-replayed", f"events/{contract}/{version}/dead-letters",
                 {"counts": counts, "entries": [[o.id, o.outcome, o.stream_id] for o in outcomes]}, data.reason)
    return ReplaySummary(replayed=outcomes, remaining=remaining)


@get("/{contract:str}/{version:str}/groups", responses=EVENT_PROBLEMS,
     summary="Consumer groups of a stream: pending entries and lag")
async def list_groups(events: EventsGateway, contract: str, version: str) -> list[GroupInfo]:
    _, keys = _served(events, contract, version)
    try:
        return await events.dead_letters.groups(keys)
    except BACKEND_ERRORS as exc:
        raise EventsUnavailable(str(exc)) from None


@post("/{contract:str}/{version:str}/groups/{group:str}/replay", responses=EVENT_PROBLEMS, status_code=200,
      summary="Deliver every entry since a time to a consumer group again (group names are consumer:group)")
async def rewind_group(events: EventsGateway, registry: Registry, request: Request[Any, Any, Any],
                       contract: str, version: str, group: str, data: RewindRequest) -> Rewound:
    _, keys = _served(events, contract, version)
    if data.from_time.tzinfo is None:
        raise InvalidRequest("`from` needs a time zone, e.g. 2025-11-28T06:00:00Z")
    try:
        known = {g.name for g in await events.dead_letters.groups(keys)}
        if group not in known:
            raise NotFound(f"{contract} {version} has no consumer group {group!r}; known: {sorted(known)}")
        last = await events.dead_letters.rewind(keys, group, int(data.from_time.timestamp() * 1000))
    except BACKEND_ERRORS as exc:
        raise EventsUnavailable(str(exc)) from None
    rewound = Rewound(group=group, last_delivered_id=last)
    await _audit(registry, request, "events.group-rewound", f"events/{contract}/{version}/groups/{group}",
                 {"from": data.from_time.isoformat(), "lastDeliveredId": last}, data.reason)
    return rewound


def _provide_events(state: State) -> EventsGateway:
    return state.events


def _provide_registry(state: State) -> Registry:
    return state.registry


events_admin_router = Router(
    path="/registry/events",
    route_handlers=[list_dead_letters, get_dead_letter, replay_dead_letter, replay_all_dead_letters, list_groups,
                    rewind_group],
    guards=[ADMINS],
    tags=["events"],
    dependencies={"events": Provide(_provide_events, sync_to_thread=False),
                  "registry": Provide(_provide_registry, sync_to_thread=False)},
)
