"""Rate limits and quotas: GCRA in memory (fake clock) and in real Redis, the policy, the headers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
from redis.asyncio import Redis

from policies.context import RequestContext
from registry.problems import Problem
from policies.identity import ANONYMOUS_PLAN, Caller
from policies.rate_limit import (
    GCRA_QUOTA_LUA,
    MemoryLimiter,
    RateLimitConfig,
    RateLimitPolicy,
    RedisLimiter,
    policy_header,
)
from registry.model import Plan
from tests.conftest import ROOT, free_port

MIDNIGHT = 1_700_006_400.0  # 2023-11-15T00:00:00Z


class FakeClock:
    """Seconds since the epoch that move only when a test says so (serves as both clocks)."""

    def __init__(self, now: float = MIDNIGHT + 3600) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def memory_limiter(clock: FakeClock, **kwargs) -> MemoryLimiter:
    return MemoryLimiter(clock=clock, wall_clock=clock, **kwargs)


def run(coro):
    return asyncio.run(coro)


def context(consumer: Caller | None = None, client: str = "10.0.0.7") -> RequestContext:
    ctx = RequestContext(method="GET", path="/orders", raw_path="/orders", query_string="", headers={},
                         client=client, scheme="http", host="gateway")
    ctx.consumer = consumer
    return ctx


# --- memory limiter, fake clock -------------------------------------------------------------------

def test_memory_burst_at_once_then_one_per_interval() -> None:
    clock = FakeClock()
    limiter = memory_limiter(clock)
    decisions = [limiter.decide("k", 4.0, 5, None) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True] * 5
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    assert decisions[-1].reset_seconds == pytest.approx(1.25)
    denied = limiter.decide("k", 4.0, 5, None)
    assert not denied.allowed and denied.remaining == 0
    assert denied.retry_after_seconds == pytest.approx(0.25)
    clock.now += 0.1
    assert limiter.decide("k", 4.0, 5, None).retry_after_seconds == pytest.approx(0.15)
    clock.now += 0.15
    assert limiter.decide("k", 4.0, 5, None).allowed
    assert not limiter.decide("k", 4.0, 5, None).allowed
    for _ in range(40):  # sustained: exactly one per interval
        clock.now += 0.25
        assert limiter.decide("k", 4.0, 5, None).allowed
        assert not limiter.decide("k", 4.0, 5, None).allowed


def test_memory_bucket_refills_and_keys_are_independent() -> None:
    clock = FakeClock()
    limiter = memory_limiter(clock)
    assert [limiter.decide("a", 10.0, 3, None).allowed for _ in range(4)] == [True, True, True, False]
    assert limiter.decide("b", 10.0, 3, None).remaining == 2
    clock.now += 0.3
    refilled = limiter.decide("a", 10.0, 3, None)
    assert refilled.allowed and refilled.remaining == 2 and refilled.reset_seconds == pytest.approx(0.1)


def test_memory_quota_counts_only_admitted_requests_and_resets_next_utc_day() -> None:
    clock = FakeClock()
    limiter = memory_limiter(clock)
    first = limiter.decide("q", 1.0, 1, 3)
    assert first.allowed and (first.quota_limit, first.quota_remaining) == (3, 2)
    for _ in range(10):  # rate-limited: the quota is untouched
        denied = limiter.decide("q", 1.0, 1, 3)
        assert not denied.allowed and not denied.quota_exceeded and denied.quota_remaining == 2
    for remaining in (1, 0):
        clock.now += 1
        assert limiter.decide("q", 1.0, 1, 3).quota_remaining == remaining
    clock.now += 1
    exhausted = limiter.decide("q", 1.0, 1, 3)
    assert not exhausted.allowed and exhausted.quota_exceeded
    assert exhausted.retry_after_seconds == pytest.approx(MIDNIGHT + 86400 - clock.now)
    clock.now = MIDNIGHT + 86400 - 0.001
    assert limiter.decide("q", 1.0, 1, 3).quota_exceeded
    clock.now = MIDNIGHT + 86400
    fresh = limiter.decide("q", 1.0, 1, 3)
    assert fresh.allowed and fresh.quota_remaining == 2


def test_memory_limiter_forgets_full_buckets_when_it_grows() -> None:
    clock = FakeClock()
    limiter = memory_limiter(clock, max_entries=100)
    for i in range(1000):
        limiter.decide(f"caller-{i}", 10.0, 1, None)
        clock.now += 0.05  # each bucket is full again 0.1 s after its request
    assert len(limiter.tats) <= 101
    assert not limiter.decide("caller-999", 10.0, 1, None).allowed  # live entries survive


def test_memory_limiter_is_atomic_under_concurrent_acquires() -> None:
    async def burst() -> list[bool]:
        limiter = MemoryLimiter()
        return [d.allowed for d in await asyncio.gather(*(limiter.acquire("c", 0.5, 20, None) for _ in range(200)))]

    assert sum(run(burst())) == 20


# --- Redis limiter, real Redis ----------------------------------------------------------------------

def test_redis_burst_then_one_per_interval(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        limiter = RedisLimiter(Redis.from_url(redis_url), redis_prefix)
        redis = limiter.redis
        try:
            decisions = [await limiter.acquire("k", 20.0, 5, None) for _ in range(5)]
            assert [d.allowed for d in decisions] == [True] * 5
            assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
            assert 0.2 < decisions[-1].reset_seconds <= 0.25
            denied = await limiter.acquire("k", 20.0, 5, None)
            assert not denied.allowed and 0 < denied.retry_after_seconds <= 0.05
            await asyncio.sleep(denied.retry_after_seconds + 0.002)
            assert (await limiter.acquire("k", 20.0, 5, None)).allowed
            assert not (await limiter.acquire("k", 20.0, 5, None)).allowed
            keys = sorted(k.decode() for k in await redis.keys(redis_prefix + "*"))
            assert keys == [f"{redis_prefix}{{k}}:gcra"]
            assert 0 < await redis.pttl(keys[0]) <= 250
        finally:
            await limiter.aclose()

    run(scenario())


def test_redis_quota_counts_only_admitted_requests(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        limiter = RedisLimiter(Redis.from_url(redis_url), redis_prefix)
        redis = limiter.redis
        try:
            admitted = 0
            while admitted < 3:
                decision = await limiter.acquire("q", 50.0, 1, 3)
                assert not decision.quota_exceeded
                admitted += decision.allowed
                assert decision.quota_remaining == 3 - admitted
            await asyncio.sleep(0.03)
            exhausted = await limiter.acquire("q", 50.0, 1, 3)
            seconds, micros = await redis.time()
            now = seconds + micros / 1e6
            next_day = (int(seconds) // 86400 + 1) * 86400
            assert not exhausted.allowed and exhausted.quota_exceeded and exhausted.quota_remaining == 0
            assert exhausted.retry_after_seconds == pytest.approx(next_day - now, abs=0.5)
            day = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y%m%d")
            quota_key = f"{redis_prefix}{{q}}:quota:{day}"
            assert int(await redis.get(quota_key)) == 3
            assert await redis.expiretime(quota_key) == next_day + 3600
        finally:
            await limiter.aclose()

    run(scenario())


# future instants only: a quota key's EXPIREAT in the past would delete it at once
@pytest.mark.parametrize("instant", ["2028-02-28T23:59:59", "2028-02-29T12:00:00", "2030-12-31T23:59:59",
                                     "2100-02-28T10:00:00", "2400-02-28T23:00:00", "2400-12-31T00:00:00"])
def test_redis_quota_key_is_the_server_utc_day_and_resets_the_next_day(redis_url: str, redis_prefix: str,
                                                                       instant: str) -> None:
    """The script with only its clock swapped for ARGV[4]: the date maths across leap years and years."""
    at = datetime.fromisoformat(instant).replace(tzinfo=timezone.utc).timestamp()
    script = GCRA_QUOTA_LUA.replace("redis.call('TIME')", "{ARGV[4], '0'}")
    assert script != GCRA_QUOTA_LUA

    async def scenario() -> None:
        redis = Redis.from_url(redis_url)
        try:
            keys = RedisLimiter(redis, redis_prefix).keys("d")
            acquire = redis.register_script(script)
            assert (await acquire(keys=keys, args=[1000.0, 100, 1, int(at)]))[0] == 1
            assert (await acquire(keys=keys, args=[1000.0, 100, 1, int(at)]))[2] == 1  # quota exceeded
            assert (await acquire(keys=keys, args=[1000.0, 100, 1, int(at) + 86400]))[0] == 1
            stored = sorted(k.decode().rsplit(":", 1)[1] for k in await redis.keys(keys[1] + "*"))
            days = [datetime.fromtimestamp(t, timezone.utc).strftime("%Y%m%d") for t in (at, at + 86400)]
            assert stored == days
        finally:
            await redis.aclose()

    run(scenario())


def test_redis_200_concurrent_acquires_admit_exactly_the_burst(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, max_connections=200)  # 200 connections in flight at once
        pooled = RedisLimiter.from_url(redis_url, redis_prefix, max_connections=16)  # 200 queue for 16
        try:
            for limiter, key in ((RedisLimiter(redis, redis_prefix), "fresh"), (pooled, "pooled")):
                decisions = await asyncio.gather(*(limiter.acquire(key, 0.5, 20, 1000) for _ in range(200)))
                assert sum(d.allowed for d in decisions) == 20
                assert sorted(d.remaining for d in decisions if d.allowed) == list(range(20))
                assert int(await redis.get(f"{redis_prefix}{{{key}}}:quota:" + await server_day(redis))) == 20
        finally:
            await redis.aclose()
            await pooled.aclose()

    run(scenario())


async def server_day(redis: Redis) -> str:
    seconds, _ = await redis.time()
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y%m%d")


def test_redis_limiter_reloads_a_script_the_server_forgot(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url)
        try:
            limiter = RedisLimiter(redis, redis_prefix)
            assert (await limiter.acquire("n", 10.0, 2, None)).allowed
            await redis.script_flush()  # what a restart without persistence or a failover does: NOSCRIPT
            assert (await limiter.acquire("n", 10.0, 2, None)).allowed
            assert await redis.script_exists(limiter.script.sha) == [True]  # loaded again, for the next call
            assert not (await limiter.acquire("n", 10.0, 2, None)).allowed  # the same state: burst 2 used up
        finally:
            await limiter.aclose()

    run(scenario())


# --- the policy and its headers ----------------------------------------------------------------------

PLAN = Plan(name="gold", rate_per_second=2.0, burst=3, quota_per_day=100)


def policy(limiter, **config) -> RateLimitPolicy:
    return RateLimitPolicy(RateLimitConfig(**config), limiter, contract="erp.sales-orders", major=1,
                           operation_id="listOrders")


def test_policy_adds_ratelimit_headers_then_answers_429_with_retry_after() -> None:
    clock = FakeClock()
    limited = policy(memory_limiter(clock))
    caller = Caller(id="channel-checkout", plan=PLAN)
    ctx = context(caller)
    run(limited.on_request(ctx))
    assert ctx.add_headers == [("RateLimit-Policy", '"burst";q=3;w=2, "daily";q=100;w=86400'),
                               ("RateLimit", '"burst";r=2;t=1, "daily";r=99;t=82800')]
    for _ in range(2):
        run(limited.on_request(context(caller)))
    ctx = context(caller)
    with pytest.raises(Problem) as problem:
        run(limited.on_request(ctx))
    assert (problem.value.status, problem.value.slug) == (429, "rate-limited")
    assert problem.value.headers == {"Retry-After": "1"}  # 0.5 s, rounded up
    assert ctx.add_headers[1] == ("RateLimit", '"burst";r=0;t=2, "daily";r=97;t=82800')


def test_policy_answers_quota_exceeded_until_the_next_utc_day() -> None:
    clock = FakeClock()
    limited = policy(memory_limiter(clock))
    caller = Caller(id="channel-batch", plan=Plan(name="batch", rate_per_second=100.0, burst=10, quota_per_day=2))
    for _ in range(2):
        run(limited.on_request(context(caller)))
    with pytest.raises(Problem) as problem:
        run(limited.on_request(context(caller)))
    assert (problem.value.status, problem.value.slug) == (429, "quota-exceeded")
    assert problem.value.headers == {"Retry-After": str(86400 - 3600)}


def test_policy_keys_by_consumer_major_and_optionally_operation() -> None:
    limiter = memory_limiter(FakeClock())
    run(policy(limiter).on_request(context(Caller(id="pos", plan=PLAN))))
    run(policy(limiter, per_operation=True).on_request(context(Caller(id="pos", plan=PLAN))))
    run(policy(limiter).on_request(context(None, client="192.0.2.1")))
    assert sorted(limiter.tats) == ["anon:192.0.2.1:erp.sales-orders:v1", "pos:erp.sales-orders:v1",
                                    "pos:erp.sales-orders:v1:listOrders"]
    assert ANONYMOUS_PLAN.quota_per_day is None


def test_policy_header_window_is_the_time_to_earn_a_full_burst() -> None:
    assert policy_header(10.0, 20, None) == '"burst";q=20;w=2'
    assert policy_header(20.0, 1, None) == '"burst";q=1;w=1'  # never 0
    assert policy_header(3.0, 10, 5000) == '"burst";q=10;w=4, "daily";q=5000;w=86400'


def test_policy_on_real_redis(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        limiter = RedisLimiter.from_url(redis_url, redis_prefix)
        limited = policy(limiter)
        caller = Caller(id="marketplace", plan=Plan(name="silver", rate_per_second=5.0, burst=2))
        await limited.on_request(context(caller))
        ctx = context(caller)
        await limited.on_request(ctx)
        assert ctx.add_headers == [("RateLimit-Policy", '"burst";q=2;w=1'), ("RateLimit", '"burst";r=0;t=1')]
        with pytest.raises(Problem) as problem:
            await limited.on_request(context(caller))
        assert problem.value.status == 429 and problem.value.headers == {"Retry-After": "1"}
        await limiter.aclose()

    run(scenario())


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_failure_mode_when_redis_does_not_answer(mode: str, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        limiter = RedisLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0", "govgate-test:down:")
        limited = policy(limiter, failure_mode=mode)
        ctx = context(Caller(id="pos", plan=PLAN))
        started = time.monotonic()
        try:
            if mode == "open":
                with caplog.at_level(logging.WARNING, logger="govgate.rate_limit"):
                    await limited.on_request(ctx)
                assert "admitting without a limit" in caplog.text
            else:
                with pytest.raises(Problem) as problem:
                    await limited.on_request(ctx)
                assert (problem.value.status, problem.value.slug) == (503, "rate-limit-unavailable")
                assert problem.value.headers == {"Retry-After": "1"}
        finally:
            await limiter.aclose()
        assert ctx.add_headers == []
        assert time.monotonic() - started < 2  # fails fast: no long retry backoff

    run(scenario())


# --- several OS processes on one key ------------------------------------------------------------------

WORKER = """
import asyncio, json, sys, time
from redis.asyncio import Redis
from policies.rate_limit import RedisLimiter

async def main(url, prefix, go, seconds, rate, burst):
    redis = Redis.from_url(url)
    limiter = RedisLimiter(redis, prefix)
    await asyncio.sleep(max(0.0, go - time.time()))
    start, admitted, sent = await redis.time(), 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        admitted += (await limiter.acquire("shared", rate, burst, None)).allowed
        sent += 1
        await asyncio.sleep(0.02)
    end = await redis.time()
    await limiter.aclose()
    print(json.dumps({"admitted": admitted, "sent": sent, "start": start[0] + start[1] / 1e6,
                      "end": end[0] + end[1] / 1e6}))

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]),
                 int(sys.argv[6])))
"""


def hammer(redis_url: str, prefix: str, *, processes: int, seconds: float, rate: float, burst: int) -> dict:
    """Run worker processes on one key from one instant; their totals and the Redis-side span."""
    go = time.time() + 1.5  # after every interpreter has started
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", WORKER, redis_url, prefix, str(go), str(seconds), str(rate), str(burst)]
    workers = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=seconds + 30)
        assert worker.returncode == 0, err
        results.append(json.loads(out))
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {"admitted": sum(r["admitted"] for r in results), "sent": sum(r["sent"] for r in results),
            "span": span, "expected": rate * span + burst}


def test_two_processes_on_one_key_admit_rate_times_span_plus_burst(redis_url: str, redis_prefix: str) -> None:
    """Two processes at ~50 req/s each, 5x the rate, for 10 s.

    burst 10 (τ = 0.45 s) absorbs scheduling jitter. With burst 1, τ = 0 and every admission loses the
    lag between TAT and the next arrival, so GCRA admits ~20% less than rate x span (measured 160 of 201).
    """
    figures = hammer(redis_url, redis_prefix, processes=2, seconds=10.0, rate=20.0, burst=10)
    print(f"\nmulti-process GCRA: sent {figures['sent']}, admitted {figures['admitted']}, "
          f"Redis span {figures['span']:.3f} s, expected {figures['expected']:.1f}")
    assert figures["sent"] > 4 * figures["expected"]
    assert abs(figures["admitted"] - figures["expected"]) <= 0.02 * figures["expected"], figures
