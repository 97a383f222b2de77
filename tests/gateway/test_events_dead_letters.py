"""Dead letters and consumer groups on a real Redis: list, inspect, replay (once), rewind."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import BlockingConnectionPool, Redis

from policies.events_dead_letters import DeadLetters
from policies.events_envelope import EventValidator
from policies.events_stream import EventsConfig, EventStream

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "contracts/events/return.received.schema.json")
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
