"""Operator tools on an event stream: dead letters (list, inspect, replay) and consumer groups (rewind).

A dead letter has a `reason`:

    invalid          refused at ingestion; kept with its errors. A replay checks it again against the
                     contract now published and appends it (de-duplicated, numbered) once it passes.
    max-deliveries   delivered `max_deliveries` times without an acknowledgement. A replay appends it
                     again as it was (same govgatesequence), for the consumers whose fix is deployed.

Taking the dead letter and appending happen in one script, so two replays never append twice.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from policies.events_envelope import EventValidator
from policies.events_stream import EventStream, StreamKeys, entry_fields, as_text

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


class DeadLetters:
    """Dead letters and consumer groups of the streams an EventStream writes."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream
        self.redis = stream.redis
        self.redeliver = self.redis.register_script(REDELIVER_LUA)

    async def list(self, keys: StreamKeys, *, after: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead letters oldest first, after the id `after` (exclusive)."""
        entries = await self.redis.xrange(keys.dead_letters, min=f"({after}" if after else "-", count=limit)
        return [_dead_letter(entry_id, fields) for entry_id, fields in entries]

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
        fields = ["event", bytes(letter.event), "producer", letter.producer, "correlation", letter.correlation,
                  "replayed_from", entry_id]
        stream_id = await self.redeliver(keys=[keys.stream, keys.dead_letters],
                                         args=[entry_id, self.stream.config.max_len, *fields])
        if not stream_id:
            return Replayed(id=entry_id, outcome="gone")
        return Replayed(id=entry_id, outcome="appended", stream_id=as_text(stream_id))

    async def replay_all(self, keys: StreamKeys, validator: EventValidator, *, limit: int = 1000) -> list[Replayed]:
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

    async def groups(self, keys: StreamKeys) -> list[GroupInfo]:
        """The stream's consumer groups with what they have pending and how far behind they are."""
        if not await self.redis.exists(keys.stream):
            return []
        return [GroupInfo(name=as_text(g["name"]), consumers=int(g["consumers"]), pending=int(g["pending"]),
                          last_delivered_id=as_text(g["last-delivered-id"]),
                          lag=None if g.get("lag") is None else int(g["lag"]))
                for g in await self.redis.xinfo_groups(keys.stream)]

    async def rewind(self, keys: StreamKeys, group: str, from_ms: int) -> str:
        """Deliver every entry from `from_ms` on to `group` again; the group's new last-delivered id."""
        last = f"{from_ms - 1}-{ALL}" if from_ms > 0 else "0-0"
        await self.redis.xgroup_setid(keys.stream, group, last)
        return last


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
