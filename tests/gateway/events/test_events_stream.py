"""The Redis side of events, on a real Redis: de-duplicated, numbered appends; consumer groups; retention."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from gateway.events.stream import EventsConfig, EventStream, StreamKeys

CONTRACT = "events.inventory-adjusted"


def event(n: int, subject: str = "SKU-1", source: str = "urn:wms") -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"evt-{n}", "source": source, "type": "t", "subject": subject,
            "data": {"n": n}}


def run_with(redis_url: str, prefix: str, config: EventsConfig,
             body: Callable[[EventStream, StreamKeys, Redis], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        redis = Redis.from_pool(BlockingConnectionPool.from_url(redis_url, max_connections=20))
        try:
            stream = EventStream(redis, prefix, config)
            return await body(stream, stream.keys(CONTRACT, 1), redis)
        finally:
            await redis.aclose()

    return asyncio.run(main())


def stored(entries: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(fields[b"event"]) for _, fields in entries]


def test_append_numbers_events_per_subject_and_answers_duplicates_with_the_original_receipt(
        redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, keys: StreamKeys, redis: Redis) -> None:
        first = await stream.append(keys, [event(1), event(2, "SKU-2"), event(3)], producer="wms", correlation="c1")
        assert [(r.sequence, r.duplicate) for r in first] == [(1, False), (1, False), (2, False)]
        again = await stream.append(keys, [event(3), event(4), event(1)], producer="wms", correlation="c2")
        assert [(r.id, r.stream_id, r.sequence, r.duplicate) for r in again] == [
            ("evt-3", first[2].stream_id, 2, True), ("evt-4", again[1].stream_id, 3, False),
            ("evt-1", first[0].stream_id, 1, True)]
        entries = await redis.xrange(keys.stream)
        assert [e[0].decode() for e in entries] == [*(r.stream_id for r in first), again[1].stream_id]
        events = stored(entries)
        assert [(e["id"], e["govgatesequence"]) for e in events] == [("evt-1", 1), ("evt-2", 1), ("evt-3", 2),
                                                                      ("evt-4", 3)]
        assert events[0] == {"govgatesequence": 1, **event(1)}
        assert entries[0][1][b"producer"] == b"wms" and entries[0][1][b"correlation"] == b"c1"

    run_with(redis_url, redis_prefix, EventsConfig(), body)


def test_the_same_id_from_another_source_is_another_event(redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, keys: StreamKeys, redis: Redis) -> None:
        receipts = await stream.append(keys, [event(1), event(1, source="urn:pos")], producer="p", correlation="c")
        assert [r.duplicate for r in receipts] == [False, False]
        assert await redis.xlen(keys.stream) == 2

    run_with(redis_url, redis_prefix, EventsConfig(), body)


def test_a_duplicate_storm_appends_each_event_once(redis_url: str, redis_prefix: str) -> None:
    """200 concurrent appends of 20 events (10 copies each, on 20 connections): 20 entries, 10 receipts each."""
    async def body(stream: EventStream, keys: StreamKeys, redis: Redis) -> None:
        copies = [event(n % 20, subject=f"SKU-{n % 3}") for n in range(200)]
        receipts = await asyncio.gather(*(stream.append(keys, [e], producer="p", correlation="c") for e in copies))
        assert await redis.xlen(keys.stream) == 20
        by_id: dict[str, set[str]] = {}
        for [receipt] in receipts:
            by_id.setdefault(receipt.id, set()).add(receipt.stream_id)
        assert len(by_id) == 20 and all(len(ids) == 1 for ids in by_id.values())
        assert sum(1 for [r] in receipts if not r.duplicate) == 20
        events = stored(await redis.xrange(keys.stream))
        for subject in ("SKU-0", "SKU-1", "SKU-2"):
            numbers = [e["govgatesequence"] for e in events if e["subject"] == subject]
            assert numbers == list(range(1, len(numbers) + 1))  # in stream order, no gap

    run_with(redis_url, redis_prefix, EventsConfig(), body)


def test_duplicates_are_forgotten_after_the_window(redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, keys: StreamKeys, redis: Redis) -> None:
        await stream.append(keys, [event(1)], producer="p", correlation="c")
        assert 0 < await redis.pttl(keys.dedup("urn:wms", "evt-1")) <= 1000
        await asyncio.sleep(1.1)
        [receipt] = await stream.append(keys, [event(1)], producer="p", correlation="c")
        assert receipt.duplicate is False and receipt.sequence == 2

    run_with(redis_url, redis_prefix, EventsConfig(dedup_seconds=1), body)


def test_retention_caps_the_stream_by_length_and_by_age(redis_url: str, redis_prefix: str) -> None:
    async def capped(stream: EventStream, keys: StreamKeys, redis: Redis) -> None:
        for start in range(0, 3000, 500):
            await stream.append(keys, [event(n) for n in range(start, start + 500)], producer="p", correlation="c")
        assert 1000 <= await redis.xlen(keys.stream) < 1300  # MAXLEN ~ trims whole nodes only

    run_with(redis_url, redis_prefix, EventsConfig(max_len=1000, max_age_seconds=0), capped)

    async def aged(stream: EventStream, keys: StreamKeys, redis: Redis) -> None:
        old_ms = int(time.time() * 1000) - 3_600_000
        for n in range(300):  # an hour old: written with explicit ids, as if appended then
            await redis.xadd(keys.stream + "x", {"event": b"{}"}, id=f"{old_ms}-{n}")
        await redis.rename(keys.stream + "x", keys.stream)
        await stream.append(keys, [event(1)], producer="p", correlation="c")
        remaining = stored(await redis.xrange(keys.stream))
        assert len(remaining) == 1 and remaining[0]["id"] == "evt-1"

    run_with(redis_url, redis_prefix + "age:", EventsConfig(max_len=0, max_age_seconds=60), aged)


def test_a_group_reads_each_entry_once_until_it_is_acknowledged(redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, keys: StreamKeys, redis: Redis) -> None:
        receipts = await stream.append(keys, [event(n) for n in range(5)], producer="p", correlation="c")
        first, dead = await stream.read(keys, "erp", "w1", 3)
        assert [d.stream_id for d in first] == [r.stream_id for r in receipts[:3]] and dead == 0
        assert json.loads(bytes(first[0].event))["govgatesequence"] == 1
        rest, _ = await stream.read(keys, "erp", "w2", 10)
        assert [d.stream_id for d in rest] == [r.stream_id for r in receipts[3:]]
        assert (await stream.read(keys, "erp", "w1", 10))[0] == []
        assert await stream.ack(keys, "erp", [d.stream_id for d in first + rest]) == 5
        assert await stream.ack(keys, "erp", [first[0].stream_id]) == 0
        other, _ = await stream.read(keys, "pos", "w1", 10)  # another group reads everything on its own
        assert len(other) == 5

    run_with(redis_url, redis_prefix, EventsConfig(), body)


def test_a_new_group_may_start_at_the_end(redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, keys: StreamKeys, redis: Redis) -> None:
        await stream.append(keys, [event(1)], producer="p", correlation="c")
        assert (await stream.read(keys, "late", "w", 10, start="$"))[0] == []
        await stream.append(keys, [event(2)], producer="p", correlation="c")
        [delivery], _ = await stream.read(keys, "late", "w", 10, start="$")
        assert json.loads(bytes(delivery.event))["id"] == "evt-2"

    run_with(redis_url, redis_prefix, EventsConfig(), body)


def test_unacknowledged_entries_come_again_after_the_visibility_timeout_then_go_to_dead_letters(
        redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, keys: StreamKeys, redis: Redis) -> None:
        [receipt] = await stream.append(keys, [event(1)], producer="wms", correlation="c")
        [first], _ = await stream.read(keys, "erp", "crashing", 10)
        assert first.delivery_count == 1
        assert (await stream.read(keys, "erp", "other", 10))[0] == []  # still within the timeout
        await asyncio.sleep(0.25)
        [second], dead = await stream.read(keys, "erp", "other", 10)
        assert (second.stream_id, second.delivery_count, dead) == (receipt.stream_id, 2, 0)
        await asyncio.sleep(0.25)
        deliveries, dead = await stream.read(keys, "erp", "other", 10)
        assert deliveries == [] and dead == 1
        [(_, fields)] = await redis.xrange(keys.dead_letters)
        assert fields[b"reason"] == b"max-deliveries" and fields[b"stream_id"].decode() == receipt.stream_id
        assert fields[b"group"] == b"erp" and fields[b"deliveries"] == b"2" and fields[b"producer"] == b"wms"
        assert (await redis.xpending(keys.stream, "erp"))["pending"] == 0

    run_with(redis_url, redis_prefix, EventsConfig(visibility_timeout_seconds=0.2, max_deliveries=2), body)


def test_refused_events_are_kept_as_dead_letters_with_their_errors(redis_url: str, redis_prefix: str) -> None:
    async def body(stream: EventStream, keys: StreamKeys, redis: Redis) -> None:
        errors = [{"in": "event", "pointer": "/data/sku", "message": "bad"}]
        await stream.dead_letter_invalid(keys, [({"id": "x"}, errors), ("not an object", errors)],
                                         producer="wms", correlation="c9")
        entries = await redis.xrange(keys.dead_letters)
        assert [msgspec.json.decode(f[b"event"]) for _, f in entries] == [{"id": "x"}, "not an object"]
        assert all(f[b"reason"] == b"invalid" and json.loads(f[b"errors"]) == errors and f[b"correlation"] == b"c9"
                   for _, f in entries)
        assert await redis.xlen(keys.stream) == 0

    run_with(redis_url, redis_prefix, EventsConfig(), body)


def test_keys_of_one_major_share_a_cluster_hash_tag() -> None:
    keys = StreamKeys.of("gg:", CONTRACT, 2)
    tag = "{" + CONTRACT + ":v2}"
    assert all(tag in key for key in (keys.stream, keys.sequences, keys.dead_letters, keys.dedup("s", "i")))
    assert keys.dedup("a", "bc") != keys.dedup("ab", "c")


@pytest.mark.parametrize("broken", ["redis://127.0.0.1:1/0"])
def test_an_unreachable_redis_raises_instead_of_pretending(broken: str) -> None:
    from gateway.events.stream import BACKEND_ERRORS

    async def main() -> None:
        redis = Redis.from_url(broken, socket_connect_timeout=0.3)
        try:
            stream = EventStream(redis, "x:", EventsConfig())
            with pytest.raises(BACKEND_ERRORS):
                await stream.append(stream.keys(CONTRACT, 1), [event(1)], producer="p", correlation="c")
        finally:
            await redis.aclose()

    asyncio.run(main())
