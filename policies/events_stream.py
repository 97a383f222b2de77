"""Event streams in Redis: one stream per contract major, appended and read by Lua scripts.

    {prefix}ev:{<contract>:v<major>}            the stream (XADD, retention by MAXLEN ~ and MINID ~)
    {prefix}ev:{<contract>:v<major>}:seq        hash: subject -> last sequence number
    {prefix}ev:{<contract>:v<major>}:dlq        the dead-letter stream
    {prefix}ev:{<contract>:v<major>}:d:<hash>   de-duplication record of (source, id): "<stream id> <sequence>"

The {…} hash tag keeps one major's keys in one Redis Cluster slot, so one script can touch them all.
One append script de-duplicates, numbers and appends every event of a request atomically; the
answer (202) is sent only after Redis has replied. One read script re-delivers what stayed
unacknowledged past the visibility timeout, dead-letters what was delivered too often, and reads new
entries, so a read costs one round trip.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

BACKEND_ERRORS = (RedisError, OSError, TimeoutError)


class EventsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Event ingestion (`POST /events/{contract}/v{major}`) and consumption through consumer groups."""

    enabled: bool = True
    """Off: every /events/ path answers 404."""
    dedup_seconds: Annotated[int, Meta(ge=1, le=30 * 86400)] = 86400
    """How long a (source, id) pair is remembered: a duplicate within it answers 200 with the original receipt."""
    max_len: Annotated[int, Meta(ge=0)] = 1_000_000
    """Retention: keep about this many entries per stream (XADD MAXLEN ~); 0 = no cap."""
    max_age_seconds: Annotated[int, Meta(ge=0)] = 7 * 86400
    """Retention: trim entries older than this (XTRIM MINID ~) on every append; 0 = no age limit."""
    max_batch: Annotated[int, Meta(ge=1, le=10_000)] = 1000
    """Most events in one `application/cloudevents-batch+json` request."""
    check_formats: bool = True
    """Check `format` (date-time, uri, uuid, …) in the envelope and the data, as well as structure."""
    dead_letter_invalid: bool = True
    """Keep refused (invalid) events in the dead-letter stream with their errors, for operators."""
    dead_letter_max_len: Annotated[int, Meta(ge=1)] = 100_000
    """Keep about this many dead letters per stream."""
    visibility_timeout_seconds: Annotated[float, Meta(ge=0.001, le=86400)] = 30.0
    """An entry read but not acknowledged for this long is delivered again (to the next reader of its group)."""
    max_deliveries: Annotated[int, Meta(ge=1, le=1000)] = 5
    """An entry delivered this many times without an acknowledgement moves to the dead-letter stream."""
    max_read_count: Annotated[int, Meta(ge=1, le=1000)] = 100
    """Most entries one read (`GET ?count=N`) returns."""


class StreamKeys(msgspec.Struct, frozen=True):
    """The Redis keys of one contract major."""

    stream: str
    sequences: str
    dead_letters: str

    @classmethod
    def of(cls, prefix: str, contract: str, major: int) -> StreamKeys:
        """The keys for `contract` v`major` under a key prefix."""
        stream = f"{prefix}ev:{{{contract}:v{major}}}"
        return cls(stream, stream + ":seq", stream + ":dlq")

    def dedup(self, source: str, event_id: str) -> str:
        """The de-duplication key of (source, id); hashed, so that long values make short keys."""
        digest = hashlib.blake2b(f"{len(source)}:{source}{event_id}".encode(), digest_size=16).hexdigest()
        return f"{self.stream}:d:{digest}"


class Receipt(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What the producer learns about one event: where it is stored, its number, whether it was new."""

    id: str
    source: str
    stream_id: str
    sequence: int
    duplicate: bool


class Delivery(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One entry handed to a consumer, to acknowledge by its stream id."""

    stream_id: str
    delivery_count: int
    event: msgspec.Raw


# KEYS[1] stream, KEYS[2] subject sequences, KEYS[3] dead letters, KEYS[3 + i] de-duplication key of event i.
# ARGV[1] max_len (0: none), ARGV[2] max age ms (0: none), ARGV[3] de-duplication ms, ARGV[4] a dead letter to
# take the events from ('' when none: a replay answers {} if another replay took it first), then 4 per event:
# subject ('' when none), the event's JSON (an object without govgatesequence), producer, correlation id.
APPEND_LUA = """
if ARGV[4] ~= '' and redis.call('XDEL', KEYS[3], ARGV[4]) == 0 then return {} end
local max_len, max_age, dedup_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local out = {}
for i = 1, #KEYS - 3 do
  local known = redis.call('GET', KEYS[3 + i])
  if known then
    local cut = string.find(known, ' ', 1, true)
    out[i] = {string.sub(known, 1, cut - 1), tonumber(string.sub(known, cut + 1)), 1}
  else
    local at = 4 + (i - 1) * 4
    local seq = redis.call('HINCRBY', KEYS[2], ARGV[at + 1], 1)
    local event = '{"govgatesequence":' .. string.format('%d', seq) .. ',' .. string.sub(ARGV[at + 2], 2)
    local id
    if max_len > 0 then
      id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', max_len, '*', 'event', event, 'producer', ARGV[at + 3],
                      'correlation', ARGV[at + 4])
    else
      id = redis.call('XADD', KEYS[1], '*', 'event', event, 'producer', ARGV[at + 3], 'correlation', ARGV[at + 4])
    end
    redis.call('SET', KEYS[3 + i], id .. ' ' .. string.format('%d', seq), 'PX', dedup_ms)
    out[i] = {id, seq, 0}
  end
end
if max_age > 0 then
  local now = redis.call('TIME')
  local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - max_age
  if oldest > 0 then redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%.0f', oldest)) end
end
return out
"""

# KEYS[1] stream, KEYS[2] dead letters. ARGV: group, consumer, count, visibility ms, max deliveries,
# dead-letter max_len. Returns {{id, fields, deliveries}…}, number dead-lettered.
READ_LUA = """
local group, consumer, count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local idle, max_deliveries, dlq_len = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local out, dead, retry, deliveries = {}, 0, {}, {}
for _, p in ipairs(redis.call('XPENDING', KEYS[1], group, 'IDLE', idle, '-', '+', count)) do
  if p[4] >= max_deliveries then
    local entry = redis.call('XRANGE', KEYS[1], p[1], p[1])[1]
    if entry then
      local fields = {'reason', 'max-deliveries', 'stream_id', p[1], 'group', group, 'deliveries', tostring(p[4])}
      for _, v in ipairs(entry[2]) do fields[#fields + 1] = v end
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', dlq_len, '*', unpack(fields))
      dead = dead + 1
    end
    redis.call('XACK', KEYS[1], group, p[1])
  else
    retry[#retry + 1] = p[1]
    deliveries[p[1]] = p[4] + 1
  end
end
if #retry > 0 then
  for _, e in ipairs(redis.call('XCLAIM', KEYS[1], group, consumer, idle, unpack(retry))) do
    if e and e[2] then out[#out + 1] = {e[1], e[2], deliveries[e[1]]} end
  end
end
if #out < count then
  local fresh = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count - #out, 'STREAMS', KEYS[1], '>')
  if fresh then
    for _, e in ipairs(fresh[1][2]) do out[#out + 1] = {e[1], e[2], 1} end
  end
end
return {out, dead}
"""


class EventStream:
    """Appends to and reads from the streams of every contract major, in one Redis."""

    def __init__(self, redis: Redis, prefix: str, config: EventsConfig) -> None:
        self.redis = redis  # shared with the other policies; the chain closes it
        self.prefix = prefix
        self.config = config
        self.append_script = redis.register_script(APPEND_LUA)
        self.read_script = redis.register_script(READ_LUA)

    def keys(self, contract: str, major: int) -> StreamKeys:
        """The keys of one contract major."""
        return StreamKeys.of(self.prefix, contract, major)

    async def append(self, keys: StreamKeys, events: list[dict[str, Any]], *, producer: str, correlation: str,
                     from_dead_letter: str = "") -> list[Receipt] | None:
        """Store events once each (de-duplicated on (source, id)), in order; None if the dead letter was taken."""
        config = self.config
        script_keys = [keys.stream, keys.sequences, keys.dead_letters]
        args: list[Any] = [config.max_len, config.max_age_seconds * 1000, config.dedup_seconds * 1000,
                           from_dead_letter]
        for event in events:
            script_keys.append(keys.dedup(event["source"], event["id"]))
            args += [event.get("subject", ""), msgspec.json.encode(event), producer, correlation]
        reply = await self.append_script(keys=script_keys, args=args)
        if not reply and events:
            return None
        return [Receipt(id=e["id"], source=e["source"], stream_id=as_text(stream_id), sequence=int(seq),
                        duplicate=bool(dup)) for e, (stream_id, seq, dup) in zip(events, reply)]

    async def dead_letter_invalid(self, keys: StreamKeys, rejected: list[tuple[Any, list[dict[str, Any]]]], *,
                                  producer: str, correlation: str) -> None:
        """Keep refused events with their errors in the dead-letter stream."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for event, errors in rejected:
                pipe.xadd(keys.dead_letters, {"reason": "invalid", "errors": msgspec.json.encode(errors),
                                              "event": msgspec.json.encode(event), "producer": producer,
                                              "correlation": correlation},
                          maxlen=self.config.dead_letter_max_len, approximate=True)
            await pipe.execute()

    async def read(self, keys: StreamKeys, group: str, consumer: str, count: int, *,
                   start: str = "0") -> tuple[list[Delivery], int]:
        """Up to `count` entries for a group member (re-deliveries first); and how many were dead-lettered."""
        config = self.config
        args = [group, consumer, count, int(config.visibility_timeout_seconds * 1000), config.max_deliveries,
                config.dead_letter_max_len]
        try:
            entries, dead = await self.read_script(keys=[keys.stream, keys.dead_letters], args=args)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.create_group(keys, group, start)
            entries, dead = await self.read_script(keys=[keys.stream, keys.dead_letters], args=args)
        return [Delivery(stream_id=as_text(entry_id), delivery_count=int(deliveries),
                         event=msgspec.Raw(entry_fields(fields).get("event", b"null")))
                for entry_id, fields, deliveries in entries], int(dead)

    async def create_group(self, keys: StreamKeys, group: str, start: str = "0") -> None:
        """Create a consumer group reading from `start` ("0": all retained entries, "$": new ones only)."""
        try:
            await self.redis.xgroup_create(keys.stream, group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # another reader created it first
                raise

    async def ack(self, keys: StreamKeys, group: str, ids: list[str]) -> int:
        """Acknowledge entries of a group; how many were pending."""
        return int(await self.redis.xack(keys.stream, group, *ids)) if ids else 0


def entry_fields(flat: list[Any]) -> dict[str, bytes]:
    """A stream entry's field list [k1, v1, k2, v2, …] as a dict."""
    return {as_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
