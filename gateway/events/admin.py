"""`/registry/events/...`: operators (role admin) inspect and replay dead letters and replay to consumer groups.

Every replay and rewind is written to the registry's audit log (`GET /registry/audit`), with
who did it, the correlation id and what happened to each entry.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Router, get, post
from litestar.di import Provide
from litestar.openapi import ResponseSpec
from litestar.params import Parameter

from gateway.events.dead_letters import DeadLetter, DeadLetters, GroupInfo, Replayed
from gateway.events.http import EventRoute, EventsGateway
from gateway.events.stream import BACKEND_ERRORS, StreamKeys, valid_id
from registry.api import PROBLEMS, Problem
from registry.audit import AuditEntry
from registry.auth import ADMINS, VERIFIER, identity
from registry.errors import InvalidRequest, NotFound, RegistryError
from registry.service import Registry
from registry.tokens import JwtVerifier

_MAJOR = re.compile(r"^v(0|[1-9][0-9]{0,5})$")
EntryId = Annotated[str, Parameter(description="a stream id, e.g. 1764316800000-0", pattern=r"^\d{1,20}-\d{1,20}$")]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RANGE_LIMIT = 10_000


# documented for clients and schemathesis, like every registry endpoint's problems
EVENT_PROBLEMS = {**PROBLEMS, 503: ResponseSpec(
    data_container=Problem, media_type="application/problem+json", generate_examples=False,
    description="Redis (the event store) cannot be reached, or this gateway keeps its state in memory")}
GROUP_REPLAY_PROBLEMS = {**EVENT_PROBLEMS, 422: ResponseSpec(
    data_container=Problem, media_type="application/problem+json", generate_examples=False,
    description="The range holds more entries than `limit`; nothing was queued")}


class EventsUnavailable(RegistryError):
    status = 503
    slug = "events-unavailable"
    title = "Event stream unavailable"


class RangeTooLarge(RegistryError):
    status = 422
    title = "Range too large"
    slug = "range-too-large"


class ReplayRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Why an operator replays (kept in the audit log)."""

    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000
    """Replay all: at most this many dead letters, oldest first."""


class GroupReplayRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Deliver the entries stored from `from` (to `to`, or to the end of the stream) to one consumer group again."""

    from_time: datetime = msgspec.field(name="from")
    """RFC 3339 with a time zone; the entries stored from this millisecond on."""
    to_time: datetime | None = msgspec.field(default=None, name="to")
    """RFC 3339 with a time zone, not before `from`; the entries stored up to this millisecond, inclusive.
    Without it the group is rewound to `from` and gets everything stored since."""
    limit: Annotated[int, msgspec.Meta(ge=1, le=RANGE_LIMIT)] | None = None
    """With `to`: the most entries the range may hold (at most and by default 10,000, which Redis copies in about
    70 ms while every other command waits); a larger range queues nothing (422)."""
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class GroupReplayed(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """What a group replay did: a rewind moves the group's position, a range queues copies for the group."""

    group: str
    mode: Literal["rewind", "range"]
    last_delivered_id: str | None = None
    """Rewind: the group's new last-delivered id."""
    queued: int | None = None
    """Range: how many entries were queued for the group."""
    first_id: str | None = None
    """Range: the stream ids of the first and last entry queued (absent when none were)."""
    last_id: str | None = None


class ReplaySummary(msgspec.Struct, frozen=True, kw_only=True):
    """What replaying every dead letter did."""

    replayed: list[Replayed]
    remaining: int


def _served(events: EventsGateway, contract: str, version: str) -> tuple[EventRoute, StreamKeys, DeadLetters]:
    found = _MAJOR.match(version)
    route = events.route(contract, int(found.group(1))) if found else None
    if route is None:
        raise NotFound(f"no published event contract {contract!r} {version}")
    if events.dead_letters is None or route.keys is None:
        raise EventsUnavailable("this gateway keeps its state in memory: events need state.backend: redis")
    return route, route.keys, events.dead_letters


def _checked(entry_id: str) -> str:
    """A stream id Redis accepts (the path pattern allows 20 digits, Redis 64 bits): 400, not a 503."""
    if not valid_id(entry_id):
        raise InvalidRequest(f"{entry_id!r} is not a stream id: both parts must be below 2^64")
    return entry_id


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
    _, keys, letters = _served(events, contract, version)
    try:
        return await letters.list(keys, after=None if after is None else _checked(after), limit=limit)
    except BACKEND_ERRORS as exc:
        raise EventsUnavailable(str(exc)) from None


@get("/{contract:str}/{version:str}/dead-letters/{entry_id:str}", responses=EVENT_PROBLEMS, summary="One dead letter")
async def get_dead_letter(events: EventsGateway, contract: str, version: str, entry_id: EntryId) -> DeadLetter:
    _, keys, letters = _served(events, contract, version)
    try:
        letter = await letters.get(keys, _checked(entry_id))
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
    route, keys, letters = _served(events, contract, version)
    try:
        outcome = await letters.replay(keys, _checked(entry_id), route.validator)
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
    route, keys, letters = _served(events, contract, version)
    data = data or ReplayRequest()
    try:
        outcomes = await letters.replay_all(keys, route.validator, limit=data.limit)
        remaining = await letters.count(keys)
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
    _, keys, letters = _served(events, contract, version)
    try:
        return await letters.groups(keys)
    except BACKEND_ERRORS as exc:
        raise EventsUnavailable(str(exc)) from None


@post("/{contract:str}/{version:str}/groups/{group:str}/replay", responses=GROUP_REPLAY_PROBLEMS, status_code=200,
      summary="Deliver the entries stored since a time, or in a time range, to one consumer group again "
              "(group names are consumer:group)")
async def replay_to_group(events: EventsGateway, registry: Registry, request: Request[Any, Any, Any],
                          contract: str, version: str, group: str, data: GroupReplayRequest) -> GroupReplayed:
    _, keys, letters = _served(events, contract, version)
    from_ms = _ms(data.from_time, "from")
    to_ms = None if data.to_time is None else _ms(data.to_time, "to")
    if to_ms is not None and to_ms < from_ms:
        raise InvalidRequest("`to` is before `from`")
    if to_ms is None and data.limit is not None:
        raise InvalidRequest("`limit` bounds a range: send it with `to` (a rewind has no limit)")
    limit = data.limit or RANGE_LIMIT
    try:
        known = {g.name for g in await letters.groups(keys)}
        if group not in known:
            raise NotFound(f"{contract} {version} has no consumer group {group!r}; known: {sorted(known)}")
        if to_ms is None:
            answer = GroupReplayed(group=group, mode="rewind",
                                   last_delivered_id=await letters.rewind(keys, group, from_ms))
        else:
            queued = await letters.replay_range(keys, group, from_ms, to_ms, limit=limit)
            if queued is None:
                raise RangeTooLarge(f"the range holds more than {limit} entries; narrow it"
                                    + (f" or raise `limit` (at most {RANGE_LIMIT})" if limit < RANGE_LIMIT else ""))
            answer = GroupReplayed(group=group, mode="range", **msgspec.structs.asdict(queued))
    except BACKEND_ERRORS as exc:
        raise EventsUnavailable(str(exc)) from None
    target, since = f"events/{contract}/{version}/groups/{group}", data.from_time.isoformat()
    if data.to_time is None:
        await _audit(registry, request, "events.group-rewound", target,
                     {"from": since, "lastDeliveredId": answer.last_delivered_id}, data.reason)
    else:
        await _audit(registry, request, "events.group-range-replayed", target,
                     {"from": since, "to": data.to_time.isoformat(), "limit": limit, "queued": answer.queued,
                      "firstId": answer.first_id, "lastId": answer.last_id}, data.reason)
    return answer


def _ms(moment: datetime, name: str) -> int:
    """Milliseconds since the epoch (the time part of stream ids); the time must say its zone."""
    if moment.tzinfo is None:
        raise InvalidRequest(f"`{name}` needs a time zone, e.g. 2025-11-28T06:00:00Z")
    return (moment - EPOCH) // timedelta(milliseconds=1)


def events_admin_router(events: EventsGateway, registry: Registry, verifier: JwtVerifier) -> Router:
    """/registry/events: the operators' API over `events` (admins only, audited in `registry`)."""
    return Router(
        path="/registry/events",
        route_handlers=[list_dead_letters, get_dead_letter, replay_dead_letter, replay_all_dead_letters, list_groups,
                        replay_to_group],
        guards=[ADMINS],
        tags=["events"],
        dependencies={"events": Provide(lambda: events, use_cache=True, sync_to_thread=False),
                      "registry": Provide(lambda: registry, use_cache=True, sync_to_thread=False)},
        opt={VERIFIER: verifier},
    )
