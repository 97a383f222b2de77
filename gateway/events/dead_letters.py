"""Operator tools on an event stream: dead letters (list, inspect, replay) and consumer groups (rewind, replay a range).

A dead letter has a `reason`:

    invalid          refused at ingestion; kept with its errors. A replay checks it again against the
                     contract now published and appends it (de-duplicated, numbered) once it passes.
    max-deliveries   delivered `max_deliveries` times without an acknowledgement. A replay appends it
                     again as it was (same govgatesequence), for the consumers whose fix is deployed.

Taking the dead letter and appending happen in one script, so two replays never append twice.

A consumer group gets entries again in one of two ways:

    rewind         XGROUP SETID to just before a time: everything stored since is delivered again, in stream
                   order. O(1), but it cannot stop before the end of the stream.
    range replay   one script copies the entries of [from, to] into the group's replay queue (all of them, or
                   none when there are more than a limit); reads serve that queue before the stream.
"""

from __future__ import annotations

import builtins
from typing import Any, Literal

import msgspec

from gateway.events.envelope import EventValidator
from gateway.events.stream import EventStream, StreamKeys, as_text, entry_fields

Outcome = Literal["appended", "duplicate", "still-invalid", "gone"]
ALL = 18446744073709551615  # the largest sequence part of a stream id

# KEYS[1] stream, KEYS[2] dead letters. ARGV[1] dead letter id, ARGV[2] max_len (0: none), then field, value…
REDELIVER_LUA = """
if redis.call('XDEL', KEYS[2], ARGV[1]) == 0 then return false end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
if tonumber(ARGV[2]) > 0 then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
end
return redis.call('XADD', KEYS[1], '*', unpack(fields))
"""

# KEYS[1] stream, KEYS[2] the group's replay queue. ARGV[1] group, ARGV[2] first id, ARGV[3] last id, ARGV[4] limit.
# Copies every entry of [first, last] into the queue, with `replay_of` = its stream id; or nothing when more than
# `limit` are in the range. Returns {queued, first copied id, last copied id}, or {-1} when over the limit.
# Both passes go a chunk at a time: one XRANGE of 100,000 entries would hold them all in Lua's memory at once.
REPLAY_RANGE_LUA = """
local group, first, last, limit, chunk = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), 1000
local n, cursor, want, entries = 0, first, 0, nil
repeat
  want = math.min(chunk, limit + 1 - n)
  entries = redis.call('XRANGE', KEYS[1], cursor, last, 'COUNT', want)
  n = n + #entries
  if n > limit then return {-1} end
  if #entries > 0 then cursor = '(' .. entries[#entries][1] end
until #entries < want
if n == 0 then return {0} end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('XGROUP', 'CREATE', KEYS[2], group, '0', 'MKSTREAM') end
local copied_first, copied_last
cursor = first
repeat
  entries = redis.call('XRANGE', KEYS[1], cursor, last, 'COUNT', chunk)
  for _, e in ipairs(entries) do
    local fields = e[2]
    fields[#fields + 1] = 'replay_of'
    fields[#fields + 1] = e[1]
    redis.call('XADD', KEYS[2], '*', unpack(fields))
  end
  if #entries > 0 then
    copied_first = copied_first or entries[1][1]
    copied_last = entries[#entries][1]
    cursor = '(' .. copied_last
  end
until #entries < chunk
return {n, copied_first, copied_last}
"""


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One dead letter as operators see it."""

    id: str
    at_ms: int
    """When it was dead-lettered (milliseconds since the epoch, from its id)."""
    reason: str
    event: msgspec.Raw
    producer: str = ""
    correlation: str = ""
    errors: msgspec.Raw | None = None
    """For `invalid`: every error found when it was refused."""
    stream_id: str | None = None
    """For `max-deliveries`: the entry it was in the stream, its group and how often it was delivered."""
    group: str | None = None
    deliveries: int | None = None


class Replayed(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What replaying one dead letter did."""

    id: str
    outcome: Outcome
    stream_id: str | None = None
    errors: list[dict[str, Any]] | None = None


class GroupInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A consumer group of a stream."""

    name: str
    consumers: int
    pending: int
    last_delivered_id: str
    lag: int | None
    replay_queued: int
    """Entries replayed to the group (a range replay) that it has not acknowledged yet."""


class RangeReplayed(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """What a range replay queued for a group: how many entries, the stream ids of the first and the last."""

    queued: int
    first_id: str | None = None
    last_id: str | None = None


class DeadLetters:
    """Dead letters and consumer groups of the streams an EventStream writes."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream
        self.redis = stream.redis
        self.redeliver = self.redis.register_script(REDELIVER_LUA)
        self.replay_range_script = self.redis.register_script(REPLAY_RANGE_LUA)

    async def list(self, keys: StreamKeys, *, after: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead letters oldest first, after the id `after` (exclusive)."""
        entries = await self.redis.xrange(keys.dead_letters, min=f"({after}" if after else "-", count=limit)
        return [_dead_letter(entry_id, fields) for entry_id, fields in entries or []]

    async def get(self, keys: StreamKeys, entry_id: str) -> DeadLetter | None:
        """One dead letter by id."""
        entries = await self.redis.xrange(keys.dead_letters, min=entry_id, max=entry_id, count=1)
        return _dead_letter(*entries[0]) if entries else None

    async def count(self, keys: StreamKeys) -> int:
        """How many dead letters a stream has."""
        return int(await self.redis.xlen(keys.dead_letters))

    async def replay(self, keys: StreamKeys, entry_id: str, validator: EventValidator) -> Replayed:
        """Append a dead letter to its stream again (re-validated when it was invalid)."""
        letter = await self.get(keys, entry_id)
        if letter is None:
            return Replayed(id=entry_id, outcome="gone")
        event = msgspec.json.decode(letter.event)
        if letter.reason == "invalid":
            errors = validator.errors(event)
            if errors:
                return Replayed(id=entry_id, outcome="still-invalid", errors=errors)
            receipts = await self.stream.append(keys, [event], producer=letter.producer,
                                                correlation=letter.correlation, from_dead_letter=entry_id)
            if receipts is None:
                return Replayed(id=entry_id, outcome="gone")
            receipt = receipts[0]
            return Replayed(id=entry_id, outcome="duplicate" if receipt.duplicate else "appended",
                            stream_id=receipt.stream_id)
        fields: builtins.list[str | bytes | int] = ["event", bytes(letter.event), "producer", letter.producer, "correlation", letter.correlation,
                  "replayed_from", entry_id]
        stream_id = await self.redeliver(keys=[keys.stream, keys.dead_letters],
                                         args=[entry_id, self.stream.config.max_len, *fields])
        if not stream_id:
            return Replayed(id=entry_id, outcome="gone")
        return Replayed(id=entry_id, outcome="appended", stream_id=as_text(stream_id))

    async def replay_all(self, keys: StreamKeys, validator: EventValidator, *, limit: int = 1000) -> builtins.list[Replayed]:
        """Replay up to `limit` dead letters, oldest first; those still invalid stay."""
        outcomes: list[Replayed] = []
        after = None
        while len(outcomes) < limit:
            page = await self.list(keys, after=after, limit=min(100, limit - len(outcomes)))
            if not page:
                break
            for letter in page:
                outcomes.append(await self.replay(keys, letter.id, validator))
            after = page[-1].id
        return outcomes

    async def groups(self, keys: StreamKeys) -> builtins.list[GroupInfo]:
        """The stream's consumer groups with what they have pending, how far behind they are and what is replayed."""
        if not await self.redis.exists(keys.stream):
            return []
        groups = await self.redis.xinfo_groups(keys.stream)
        async with self.redis.pipeline(transaction=False) as pipe:
            for g in groups:
                pipe.xlen(keys.replay(as_text(g["name"])))
            queued = await pipe.execute()
        return [GroupInfo(name=as_text(g["name"]), consumers=int(g["consumers"]), pending=int(g["pending"]),
                          last_delivered_id=as_text(g["last-delivered-id"]),
                          lag=None if g.get("lag") is None else int(g["lag"]), replay_queued=int(n))
                for g, n in zip(groups, queued, strict=True)]

    async def rewind(self, keys: StreamKeys, group: str, from_ms: int) -> str:
        """Deliver every entry from `from_ms` on to `group` again; the group's new last-delivered id."""
        last = f"{from_ms - 1}-{ALL}" if from_ms > 0 else "0-0"
        await self.redis.xgroup_setid(keys.stream, group, last)
        return last

    async def replay_range(self, keys: StreamKeys, group: str, from_ms: int, to_ms: int, *,
                           limit: int) -> RangeReplayed | None:
        """Queue the entries stored in [from_ms, to_ms] for `group` alone; None (nothing queued) if over `limit`."""
        if to_ms < 0:
            return RangeReplayed(queued=0)
        reply = await self.replay_range_script(keys=[keys.stream, keys.replay(group)],
                                               args=[group, f"{max(from_ms, 0)}-0", f"{to_ms}-{ALL}", limit])
        queued = int(reply[0])
        if queued < 0:
            return None
        if queued == 0:
            return RangeReplayed(queued=0)
        return RangeReplayed(queued=queued, first_id=as_text(reply[1]), last_id=as_text(reply[2]))


def _dead_letter(entry_id: Any, raw: Any) -> DeadLetter:
    fields = raw if isinstance(raw, dict) else entry_fields(raw)
    fields = {as_text(k): v for k, v in fields.items()}
    text = as_text(entry_id)
    deliveries = fields.get("deliveries")
    return DeadLetter(id=text, at_ms=int(text.split("-")[0]), reason=as_text(fields.get("reason", b"")),
                      event=msgspec.Raw(fields.get("event", b"null")), producer=as_text(fields.get("producer", b"")),
                      correlation=as_text(fields.get("correlation", b"")),
                      errors=msgspec.Raw(fields["errors"]) if "errors" in fields else None,
                      stream_id=as_text(fields["stream_id"]) if "stream_id" in fields else None,
                      group=as_text(fields["group"]) if "group" in fields else None,
                      deliveries=int(deliveries) if deliveries is not None else None)
