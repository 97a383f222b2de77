"""Dead letters and consumer groups on a real Redis: list, inspect, replay (once), rewind, replay a time range."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import BlockingConnectionPool, Redis

from gateway.events.dead_letters import DeadLetters, RangeReplayed
from gateway.events.envelope import EventValidator
from gateway.events.stream import EventsConfig, EventStream

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "contracts/events/return.received.schema.json")
                    .read_text())
FIXED = copy.deepcopy(SCHEMA)  # the fix: a new optional property
FIXED["properties"]["carrier"] = {"type": "string", "maxLength": 40}


def event(n: int, **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"ret-{n}", "source": "urn:returns", "type": "t", "subject": "RMA-1",
            "data": {**SCHEMA["examples"][0], **data}}


def run(redis_url: str, prefix: str, body: Any, config: EventsConfig = EventsConfig()) -> Any:
    async def main() -> Any:
        redis = Redis.from_pool(BlockingConnectionPool.from_url(redis_url, max_connections=10))
        try:
            stream = EventStream(redis, prefix, config)
            return await body(stream, DeadLetters(stream), stream.keys("events.return-received", 1), redis)
        finally:
            await redis.aclose()

    return asyncio.run(main())


async def refuse(stream: EventStream, keys: Any, validator: EventValidator, *events: dict[str, Any]) -> None:
    await stream.dead_letter_invalid(keys, [(e, validator.errors(e)) for e in events], producer="returns-portal",
                                     correlation="corr-1")


def test_an_invalid_dead_letter_is_replayed_once_the_contract_allows_it(redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, letters: DeadLetters, keys: Any, redis: Redis) -> None:
        old, fixed = EventValidator(SCHEMA), EventValidator(FIXED)
        await refuse(stream, keys, old, event(1, carrier="dhl"))
        [letter] = await letters.list(keys)
        assert letter.reason == "invalid" and letter.producer == "returns-portal" and letter.correlation == "corr-1"
        assert json.loads(bytes(letter.errors))[0]["pointer"] == "/data"
        assert await letters.get(keys, letter.id) == letter
        assert abs(letter.at_ms - time.time() * 1000) < 60_000

        still = await letters.replay(keys, letter.id, old)
        assert still.outcome == "still-invalid" and still.errors and await letters.count(keys) == 1
        replayed = await letters.replay(keys, letter.id, fixed)
        assert replayed.outcome == "appended" and await letters.count(keys) == 0
        [(stream_id, fields)] = await redis.xrange(keys.stream)
        assert stream_id.decode() == replayed.stream_id and fields[b"producer"] == b"returns-portal"
        assert json.loads(fields[b"event"])["govgatesequence"] == 1
        assert (await letters.replay(keys, letter.id, fixed)).outcome == "gone"

    run(redis_url, redis_prefix, body)


def test_a_dead_letter_whose_event_arrived_meanwhile_replays_as_a_duplicate(redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, letters: DeadLetters, keys: Any, redis: Redis) -> None:
        await refuse(stream, keys, EventValidator(SCHEMA), event(1, carrier="dhl"))
        [original] = await stream.append(keys, [event(1, carrier="dhl")], producer="p", correlation="c")
        [letter] = await letters.list(keys)
        replayed = await letters.replay(keys, letter.id, EventValidator(FIXED))
        assert (replayed.outcome, replayed.stream_id) == ("duplicate", original.stream_id)
        assert await redis.xlen(keys.stream) == 1 and await letters.count(keys) == 0

    run(redis_url, redis_prefix, body)


def test_concurrent_replays_of_one_dead_letter_append_it_once(redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, letters: DeadLetters, keys: Any, redis: Redis) -> None:
        await stream.append(keys, [event(1)], producer="p", correlation="c")
        await stream.read(keys, "g", "w", 10)
        await asyncio.sleep(0.06)
        assert (await stream.read(keys, "g", "w", 10))[1] == 1  # delivered once, max_deliveries 1: dead-lettered
        [letter] = await letters.list(keys)
        assert letter.reason == "max-deliveries" and letter.group == "g" and letter.deliveries == 1
        outcomes = await asyncio.gather(*(letters.replay(keys, letter.id, EventValidator(SCHEMA)) for _ in range(8)))
        assert sorted(o.outcome for o in outcomes) == ["appended"] + ["gone"] * 7
        entries = await redis.xrange(keys.stream)
        assert len(entries) == 2
        assert json.loads(entries[1][1][b"event"]) == json.loads(entries[0][1][b"event"])  # same sequence number
        assert entries[1][1][b"replayed_from"].decode() == letter.id
        [again], _ = await stream.read(keys, "g", "w", 10)
        assert again.stream_id == entries[1][0].decode()

    run(redis_url, redis_prefix, body, EventsConfig(visibility_timeout_seconds=0.05, max_deliveries=1))


def test_replay_all_replays_what_passes_and_keeps_the_rest(redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, letters: DeadLetters, keys: Any, redis: Redis) -> None:
        validator = EventValidator(SCHEMA)
        await refuse(stream, keys, validator, *[event(n, carrier="ups") for n in range(150)],
                     event(999, lines=[]), {"not": "an event"})
        outcomes = await letters.replay_all(keys, EventValidator(FIXED))
        counts = {o: sum(1 for x in outcomes if x.outcome == o) for o in {x.outcome for x in outcomes}}
        assert counts == {"appended": 150, "still-invalid": 2}
        assert await letters.count(keys) == 2 and await redis.xlen(keys.stream) == 150
        assert [o.id for o in outcomes] == sorted([o.id for o in outcomes], key=lambda i: tuple(map(int, i.split("-"))))
        limited = await letters.replay_all(keys, EventValidator(FIXED), limit=1)
        assert len(limited) == 1

    run(redis_url, redis_prefix, body)


def test_a_group_is_rewound_to_a_time_and_gets_everything_since_again(redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, letters: DeadLetters, keys: Any, redis: Redis) -> None:
        assert await letters.groups(keys) == []
        await stream.append(keys, [event(1)], producer="p", correlation="c")
        await asyncio.sleep(0.02)
        middle_ms = int(time.time() * 1000)
        await asyncio.sleep(0.02)
        later = await stream.append(keys, [event(2), event(3)], producer="p", correlation="c")
        delivered, _ = await stream.read(keys, "erp", "w", 10)
        await stream.ack(keys, "erp", [d.stream_id for d in delivered])
        [group] = await letters.groups(keys)
        assert (group.name, group.pending, group.consumers) == ("erp", 0, 1)
        await letters.rewind(keys, "erp", middle_ms)
        again, _ = await stream.read(keys, "erp", "w", 10)
        assert [d.stream_id for d in again] == [r.stream_id for r in later]
        await letters.rewind(keys, "erp", 0)
        assert len((await stream.read(keys, "erp", "w", 10))[0]) == 3

    run(redis_url, redis_prefix, body)


def test_dead_letters_list_in_pages(redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, letters: DeadLetters, keys: Any, redis: Redis) -> None:
        await refuse(stream, keys, EventValidator(SCHEMA), *[event(n, carrier="x") for n in range(5)])
        first = await letters.list(keys, limit=2)
        rest = await letters.list(keys, after=first[-1].id, limit=10)
        assert len(first) == 2 and len(rest) == 3
        assert [msgspec.json.decode(bytes(x.event))["id"] for x in first + rest] == [f"ret-{n}" for n in range(5)]
        assert await letters.get(keys, "1-0") is None

    run(redis_url, redis_prefix, body)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def slices(stream: EventStream, keys: Any, *sizes: int) -> tuple[list[list[str]], list[int]]:
    """Append slices of events a few milliseconds apart; their stream ids, and a time between each two slices."""
    ids: list[list[str]] = []
    boundaries: list[int] = []
    for n, size in enumerate(sizes):
        if n:
            await asyncio.sleep(0.005)
            boundaries.append(now_ms())
            await asyncio.sleep(0.005)
        receipts = await stream.append(keys, [event(100 * n + i) for i in range(size)], producer="p", correlation="c")
        ids.append([r.stream_id for r in receipts])
    return ids, boundaries


async def drain(stream: EventStream, keys: Any, group: str) -> list[str]:
    """Read and acknowledge everything the group has; the stream ids read."""
    delivered, _ = await stream.read(keys, group, "w", 1000)
    assert await stream.ack(keys, group, [d.stream_id for d in delivered]) == len(delivered)
    return [d.stream_id for d in delivered]


def test_a_time_range_is_replayed_to_one_group_before_new_entries(redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, letters: DeadLetters, keys: Any, redis: Redis) -> None:
        (first, middle, last), (after_first, after_middle) = await slices(stream, keys, 2, 3, 2)
        for group in ("erp", "bi"):
            assert await drain(stream, keys, group) == first + middle + last
        queued = await letters.replay_range(keys, "erp", after_first, after_middle, limit=100)
        assert (queued.queued, queued.first_id, queued.last_id) == (3, middle[0], middle[-1])
        assert {g.name: g.replay_queued for g in await letters.groups(keys)} == {"erp": 3, "bi": 0}
        [newer] = await stream.append(keys, [event(999)], producer="p", correlation="c")

        delivered, _ = await stream.read(keys, "erp", "w", 10)
        assert [d.replay_of for d in delivered] == [*middle, None]
        assert [d.stream_id.startswith("replay:") for d in delivered] == [True] * 3 + [False]
        assert delivered[-1].stream_id == newer.stream_id and all(d.delivery_count == 1 for d in delivered)
        stored = {i.decode(): f[b"event"] for i, f in await redis.xrange(keys.stream)}
        assert [bytes(d.event) for d in delivered[:3]] == [stored[i] for i in middle]  # govgatesequence kept
        wire = [msgspec.json.decode(msgspec.json.encode(d)) for d in delivered]
        assert wire[0]["replayOf"] == middle[0] and "replayOf" not in wire[-1]
        [other], _ = await stream.read(keys, "bi", "w", 10)  # the other group: the new entry, nothing replayed
        assert (other.stream_id, other.replay_of) == (newer.stream_id, None)

        assert await stream.ack(keys, "erp", [d.stream_id for d in delivered]) == 4
        assert await redis.xlen(keys.replay("erp")) == 0 and not await redis.exists(keys.replay("erp"))
        assert (await stream.read(keys, "erp", "w", 10))[0] == []
        assert {g.name: (g.pending, g.replay_queued) for g in await letters.groups(keys)} == {"erp": (0, 0),
                                                                                             "bi": (1, 0)}

    run(redis_url, redis_prefix, body)


def test_an_unacknowledged_replayed_entry_comes_again_then_is_dead_lettered_with_its_stream_id(
        redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, letters: DeadLetters, keys: Any, redis: Redis) -> None:
        [ids], _ = await slices(stream, keys, 2)
        await drain(stream, keys, "erp")
        assert (await letters.replay_range(keys, "erp", 0, now_ms(), limit=10)).queued == 2
        kept, acked = (await stream.read(keys, "erp", "w", 10))[0]
        assert await stream.ack(keys, "erp", [acked.stream_id]) == 1
        assert (await stream.read(keys, "erp", "w", 10))[0] == []  # within the visibility timeout
        await asyncio.sleep(0.25)
        [again], dead = await stream.read(keys, "erp", "other", 10)
        assert (again.stream_id, again.replay_of, again.delivery_count, dead) == (kept.stream_id, ids[0], 2, 0)
        await asyncio.sleep(0.25)
        assert await stream.read(keys, "erp", "w", 10) == ([], 1)
        [letter] = await letters.list(keys)
        assert (letter.reason, letter.group, letter.deliveries) == ("max-deliveries", "erp", 2)
        assert letter.stream_id == ids[0]  # its id in the stream, not its copy's in the replay queue
        assert letter.event == kept.event
        assert not await redis.exists(keys.replay("erp")) and await redis.xlen(keys.stream) == 2
        assert (await stream.read(keys, "erp", "w", 10))[0] == []

    run(redis_url, redis_prefix, body, EventsConfig(visibility_timeout_seconds=0.2, max_deliveries=2))


def test_a_range_over_the_limit_queues_nothing(redis_url: str, redis_prefix: str) -> None:
    """2,001 entries: more than the script's chunk of 1,000 at a time, so both of its passes page."""
    async def body(stream: EventStream, letters: DeadLetters, keys: Any, redis: Redis) -> None:
        for start in range(0, 2001, 500):
            await stream.append(keys, [event(n) for n in range(start, min(start + 500, 2001))], producer="p",
                                correlation="c")
        await stream.create_group(keys, "erp", "$")
        assert await letters.replay_range(keys, "erp", 0, now_ms(), limit=2000) is None
        assert not await redis.exists(keys.replay("erp"))
        assert (await stream.read(keys, "erp", "w", 10))[0] == []
        assert await letters.replay_range(keys, "erp", 0, 1, limit=10) == RangeReplayed(queued=0)  # none in range
        assert not await redis.exists(keys.replay("erp"))

        stream_ids = [i.decode() for i, _ in await redis.xrange(keys.stream)]
        queued = await letters.replay_range(keys, "erp", 0, now_ms(), limit=2001)
        assert (queued.queued, queued.first_id, queued.last_id) == (2001, stream_ids[0], stream_ids[-1])
        assert [f[b"replay_of"].decode() for _, f in await redis.xrange(keys.replay("erp"))] == stream_ids

    run(redis_url, redis_prefix, body)


def test_concurrent_range_replays_and_appends_neither_lose_nor_duplicate(redis_url: str, redis_prefix: str) -> None:
    """Replays of [start, an hour ahead] while 8 producers append: each replay copies a whole prefix of the
    stream, contiguously; the group gets every new entry once, and every replay's copies once."""
    async def body(stream: EventStream, letters: DeadLetters, keys: Any, redis: Redis) -> None:
        [before], _ = await slices(stream, keys, 20)
        assert await drain(stream, keys, "erp") == before
        start, ahead = int(before[0].split("-")[0]), now_ms() + 3_600_000

        async def produce(worker: int) -> list[str]:
            appended = []
            for n in range(25):
                [receipt] = await stream.append(keys, [event(1000 * (worker + 1) + n)], producer="p", correlation="c")
                appended.append(receipt.stream_id)
            return appended

        async def replay() -> Any:
            await asyncio.sleep(0.001)
            return await letters.replay_range(keys, "erp", start, ahead, limit=1000)

        outcomes = await asyncio.gather(*(produce(w) for w in range(8)), *(replay() for _ in range(6)))
        appended, replays = [i for ids in outcomes[:8] for i in ids], outcomes[8:]
        stream_ids = [i.decode() for i, _ in await redis.xrange(keys.stream)]
        assert stream_ids == before + sorted(appended, key=lambda i: tuple(map(int, i.split("-"))))

        replayed: list[list[str]] = []
        fresh: list[str] = []
        while delivered := (await stream.read(keys, "erp", "w", 37))[0]:
            for d in delivered:
                if d.replay_of is None:
                    fresh.append(d.stream_id)
                elif d.replay_of == stream_ids[0]:
                    replayed.append([d.replay_of])
                else:
                    replayed[-1].append(d.replay_of)
            assert await stream.ack(keys, "erp", [d.stream_id for d in delivered]) == len(delivered)
        assert fresh == stream_ids[len(before):]  # every new entry once, in order
        assert sorted(len(copies) for copies in replayed) == sorted(r.queued for r in replays)
        assert all(copies == stream_ids[:len(copies)] for copies in replayed)  # a prefix, whole and in order
        assert not await redis.exists(keys.replay("erp"))

    run(redis_url, redis_prefix, body)


def test_a_group_recreated_under_its_replay_queue_reads_the_queue_whole(redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, letters: DeadLetters, keys: Any, redis: Redis) -> None:
        [ids], _ = await slices(stream, keys, 3)
        await drain(stream, keys, "erp")
        await letters.replay_range(keys, "erp", 0, now_ms(), limit=10)
        await redis.xgroup_destroy(keys.stream, "erp")
        delivered, _ = await stream.read(keys, "erp", "w", 10, start="$")  # creates the group again, at the end
        assert [d.replay_of for d in delivered] == ids

    run(redis_url, redis_prefix, body)
