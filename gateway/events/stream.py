"""Event streams in Redis: one stream per contract major, appended and read by Lua scripts.

    {prefix}ev:{<contract>:v<major>}            the stream (XADD, retention by MAXLEN ~ and MINID ~)
    {prefix}ev:{<contract>:v<major>}:seq        hash: subject -> last sequence number
    {prefix}ev:{<contract>:v<major>}:dlq        the dead-letter stream
    {prefix}ev:{<contract>:v<major>}:d:<hash>   de-duplication record of (source, id): "<stream id> <sequence>"
    {prefix}ev:{<contract>:v<major>}:rp:<group> a group's replay queue: copies of a replayed time range

The {…} hash tag keeps one major's keys in one Redis Cluster slot, so one script can touch them all.
One append script de-duplicates, numbers and appends every event of a request atomically; the
answer (202) is sent only after Redis has replied. One read script re-delivers what stayed
unacknowledged past the visibility timeout, dead-letters what was delivered too often, and reads new
entries, first from the group's replay queue (if it has one), then from the stream, so a read costs
one round trip. A replayed entry is handed out as `replay:<queue id>` and leaves the queue when it
is acknowledged.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

BACKEND_ERRORS = (RedisError, OSError, TimeoutError)
REPLAY = "replay:"  # the prefix of the ids of entries delivered from a group's replay queue
MAX_ID_PART = 2**64 - 1  # each part of a stream id is an unsigned 64-bit number


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

    def replay(self, group: str) -> str:
        """The replay queue of a consumer group: entries replayed to it alone, served before the stream."""
        return f"{self.stream}:rp:{group}"

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


class Delivery(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """One entry handed to a consumer, to acknowledge by its stream id."""

    stream_id: str
    """The id to acknowledge: the entry's id in the stream, or `replay:<id>` for one replayed to this group."""
    delivery_count: int
    event: msgspec.Raw
    replay_of: str | None = None
    """For a replayed entry: its id in the stream (the wire omits it for the others)."""


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

# KEYS[1] stream, KEYS[2] dead letters, KEYS[3] the group's replay queue. ARGV: group, consumer, count, visibility
# ms, max deliveries, dead-letter max_len. Returns {{id, fields, deliveries, replayed (0 or 1)}…}, number dead-lettered.
READ_LUA = """
local group, consumer, count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local idle, max_deliveries, dlq_len = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local out, dead = {}, 0

local function original_id(fields, id)
  for i = 1, #fields, 2 do
    if fields[i] == 'replay_of' then return fields[i + 1] end
  end
  return id
end

-- re-deliver what stayed unacknowledged, dead-letter what was delivered too often, then read new entries of `key`
local function serve(key, replayed)
  local retry, deliveries, flag = {}, {}, replayed and 1 or 0
  for _, p in ipairs(redis.call('XPENDING', key, group, 'IDLE', idle, '-', '+', count - #out)) do
    if p[4] >= max_deliveries then
      local entry = redis.call('XRANGE', key, p[1], p[1])[1]
      if entry then
        local fields = {'reason', 'max-deliveries', 'stream_id', original_id(entry[2], p[1]), 'group', group,
                        'deliveries', tostring(p[4])}
        for _, v in ipairs(entry[2]) do fields[#fields + 1] = v end
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', dlq_len, '*', unpack(fields))
        dead = dead + 1
      end
      redis.call('XACK', key, group, p[1])
      if replayed then redis.call('XDEL', key, p[1]) end
    else
      retry[#retry + 1] = p[1]
      deliveries[p[1]] = p[4] + 1
    end
  end
  if #retry > 0 then
    for _, e in ipairs(redis.call('XCLAIM', key, group, consumer, idle, unpack(retry))) do
      if e and e[2] then out[#out + 1] = {e[1], e[2], deliveries[e[1]], flag} end
    end
  end
  if #out < count then
    local fresh = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count - #out, 'STREAMS', key, '>')
    if fresh then
      for _, e in ipairs(fresh[1][2]) do out[#out + 1] = {e[1], e[2], 1, flag} end
    end
  end
end

if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('XPENDING', KEYS[1], group)  -- NOGROUP before the queue is touched: the caller creates it, reads again
  serve(KEYS[3], true)
  if redis.call('XLEN', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
end
if #out < count then serve(KEYS[1], false) end
return {out, dead}
"""

# KEYS[1] stream, KEYS[2] the group's replay queue. ARGV[1] group, ARGV[2] n, then n ids of the stream, then ids of
# the queue: acknowledged there and deleted (the queue is gone once empty). Returns how many were pending.
ACK_LUA = """
local group, plain = ARGV[1], tonumber(ARGV[2])
local acknowledged = 0
if plain > 0 then acknowledged = redis.call('XACK', KEYS[1], group, unpack(ARGV, 3, 2 + plain)) end
for i = 3 + plain, #ARGV do
  if redis.call('XACK', KEYS[2], group, ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[2], ARGV[i])
    acknowledged = acknowledged + 1
  end
end
if redis.call('XLEN', KEYS[2]) == 0 then redis.call('DEL', KEYS[2]) end
return acknowledged
"""


class EventStream:
    """Appends to and reads from the streams of every contract major, in one Redis."""

    def __init__(self, redis: Redis, prefix: str, config: EventsConfig) -> None:
        self.redis = redis  # shared with the other policies; the chain closes it
        self.prefix = prefix
        self.config = config
        self.append_script = redis.register_script(APPEND_LUA)
        self.read_script = redis.register_script(READ_LUA)
        self.ack_script = redis.register_script(ACK_LUA)

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
        """Up to `count` entries for a group member (its replay queue first, re-deliveries before new entries);
        and how many were dead-lettered."""
        config = self.config
        script_keys = [keys.stream, keys.dead_letters, keys.replay(group)]
        args: list[str | int] = [group, consumer, count, int(config.visibility_timeout_seconds * 1000),
                                 config.max_deliveries, config.dead_letter_max_len]
        try:
            entries, dead = await self.read_script(keys=script_keys, args=args)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.create_group(keys, group, start)
            entries, dead = await self.read_script(keys=script_keys, args=args)
        return [_delivery(*entry) for entry in entries], int(dead)

    async def create_group(self, keys: StreamKeys, group: str, start: str = "0") -> None:
        """Create a consumer group reading from `start` ("0": all retained entries, "$": new ones only)."""
        try:
            await self.redis.xgroup_create(keys.stream, group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # another reader created it first
                raise

    async def ack(self, keys: StreamKeys, group: str, ids: list[str]) -> int:
        """Acknowledge entries of a group (`replay:` ones leave its replay queue); how many were pending."""
        replayed = [i.removeprefix(REPLAY) for i in ids if i.startswith(REPLAY)]
        if not replayed:
            return int(await self.redis.xack(keys.stream, group, *ids)) if ids else 0
        plain = [i for i in ids if not i.startswith(REPLAY)]
        return int(await self.ack_script(keys=[keys.stream, keys.replay(group)],
                                         args=[group, len(plain), *plain, *replayed]))


def _delivery(entry_id: Any, flat: list[Any], deliveries: Any, replayed: Any) -> Delivery:
    fields = entry_fields(flat)
    event = msgspec.Raw(fields.get("event", b"null"))
    if not replayed:
        return Delivery(stream_id=as_text(entry_id), delivery_count=int(deliveries), event=event)
    return Delivery(stream_id=REPLAY + as_text(entry_id), delivery_count=int(deliveries), event=event,
                    replay_of=as_text(fields.get("replay_of", b"")))


def valid_id(text: str) -> bool:
    """Whether `<ms>-<seq>` (digits, as the APIs' patterns allow) is a stream id Redis accepts: both parts < 2**64."""
    ms, _, seq = text.removeprefix(REPLAY).partition("-")
    return int(ms) <= MAX_ID_PART and int(seq) <= MAX_ID_PART


def entry_fields(flat: list[Any]) -> dict[str, bytes]:
    """A stream entry's field list [k1, v1, k2, v2, …] as a dict."""
    return {as_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
