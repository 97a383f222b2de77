"""Backend protection: low classes are shed, high classes wait their turn, no slot ever leaks."""

from __future__ import annotations

import asyncio
import statistics
import time

import msgspec
import pytest

from policies.backend_protection import BackendProtectionConfig, BackendProtectionPolicy, UpstreamGuard
from policies.context import RequestContext
from registry.problems import Problem
from policies.identity import Caller
from registry.model import Plan


def protection(**config: object) -> tuple[UpstreamGuard, BackendProtectionPolicy]:
    settings = BackendProtectionConfig(**config)  # type: ignore[arg-type]
    guard = UpstreamGuard(settings, "erp")
    return guard, BackendProtectionPolicy(settings, guard)


def request(priority: str | None) -> RequestContext:
    """A request from a caller whose plan has this priority (None: anonymous)."""
    ctx = RequestContext(method="POST", path="/orders", raw_path="/orders", query_string="", headers={},
                         client="127.0.0.1", scheme="http", host="gateway")
    if priority is not None:
        ctx.consumer = Caller(id=f"channel-{priority}", plan=Plan(name="plan", priority=priority))
    return ctx


async def enter(policy: BackendProtectionPolicy, ctx: RequestContext) -> Problem | None:
    """Run on_request as the proxy does; the problem it answered with, if any."""
    try:
        outcome = policy.on_request(ctx)
        if outcome is not None:
            await outcome
    except Problem as problem:
        ctx.problem, ctx.response_status = problem, problem.status
        return problem
    return None


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_saturation_sheds_low_classes_at_once_and_a_high_class_gets_the_next_slot() -> None:
    async def scenario() -> None:
        guard, policy = protection(max_in_flight=2)
        holders = [request("checkout"), request("checkout")]
        for ctx in holders:
            assert await enter(policy, ctx) is None
        for priority in ("marketplace-sync", "batch", "unlisted-class"):
            ctx = request(priority)
            with pytest.raises(Problem) as caught:
                policy.on_request(ctx)  # synchronously: a shed request never waits
            problem = caught.value
            assert (problem.status, problem.slug) == (503, "upstream-saturated")
            assert problem.headers == {"Retry-After": "1"} and repr(priority) in problem.detail
            policy.on_finish(ctx)
            assert ctx.protection_slot == "shed" and guard.in_flight == 2
        waiter = request("normal")
        waiting = asyncio.create_task(enter(policy, waiter))
        await settle()
        assert guard.waiting == {"checkout": 0, "normal": 1, "marketplace-sync": 0, "batch": 0}
        policy.on_finish(holders[0])
        assert await waiting is None
        assert waiter.protection_slot == "held" and guard.in_flight == 2
        for ctx in (holders[1], waiter):
            policy.on_finish(ctx)
        assert guard.in_flight == 0 and sum(guard.waiting.values()) == 0

    asyncio.run(scenario())


def test_the_highest_class_waiting_gets_a_freed_slot_first() -> None:
    async def scenario() -> None:
        guard, policy = protection(max_in_flight=1, max_wait_ms=5_000)
        holder, normal, checkout = request("batch"), request("normal"), request("checkout")
        assert await enter(policy, holder) is None
        normal_task = asyncio.create_task(enter(policy, normal))
        await settle()
        checkout_task = asyncio.create_task(enter(policy, checkout))  # arrives later, ranks higher
        await settle()
        policy.on_finish(holder)
        assert await checkout_task is None and not normal_task.done()
        policy.on_finish(checkout)
        assert await normal_task is None
        policy.on_finish(normal)
        assert guard.in_flight == 0

    asyncio.run(scenario())


def test_a_waiting_class_gets_503_once_max_wait_has_passed() -> None:
    async def scenario() -> None:
        guard, policy = protection(max_in_flight=1, max_wait_ms=20, retry_after_seconds=3)
        holder, late = request("checkout"), request("checkout")
        assert await enter(policy, holder) is None
        started = time.perf_counter()
        problem = await enter(policy, late)
        assert problem is not None and problem.slug == "upstream-saturated"
        assert "20 ms" in problem.detail and problem.headers["Retry-After"] == "3"
        assert 0.015 <= time.perf_counter() - started < 1.0
        assert late.protection_slot == "timed-out" and guard.waiting["checkout"] == 0
        policy.on_finish(late)
        policy.on_finish(holder)
        assert guard.in_flight == 0

    asyncio.run(scenario())


def test_reserved_slots_are_kept_from_lower_classes() -> None:
    guard = UpstreamGuard(BackendProtectionConfig(max_in_flight=4, reserved={"checkout": 2, "normal": 1}))
    checkout, normal, sync, batch = (guard.rank(c) for c in ("checkout", "normal", "marketplace-sync", "batch"))
    assert guard.try_acquire(batch) and not guard.try_acquire(batch) and not guard.try_acquire(sync)
    assert guard.try_acquire(normal) and not guard.try_acquire(normal)
    assert guard.try_acquire(checkout) and guard.try_acquire(checkout) and not guard.try_acquire(checkout)


def test_a_reserved_slot_goes_to_a_waiting_high_class_not_to_a_lower_one() -> None:
    async def scenario() -> None:
        guard, policy = protection(max_in_flight=3, reserved={"checkout": 1}, max_wait_ms=5_000)
        normals = [request("normal"), request("normal")]
        for ctx in normals:
            assert await enter(policy, ctx) is None
        last = request("normal")
        third = asyncio.create_task(enter(policy, last))  # the last slot is checkout's
        await settle()
        assert guard.in_flight == 2 and guard.waiting["normal"] == 1
        checkout = request("checkout")
        assert await enter(policy, checkout) is None and guard.in_flight == 3
        policy.on_finish(checkout)
        await settle()
        assert not third.done()
        policy.on_finish(normals[0])
        assert await third is None
        for ctx in (normals[1], last):
            policy.on_finish(ctx)
        assert guard.in_flight == 0

    asyncio.run(scenario())


def test_waiters_of_one_class_are_served_first_come_first_served() -> None:
    async def scenario() -> None:
        guard = UpstreamGuard(BackendProtectionConfig(max_in_flight=1))
        assert guard.try_acquire(guard.rank("normal"))
        served: list[int] = []

        async def wait(number: int) -> None:
            assert await guard.acquire(guard.rank("normal"), timeout=5)
            served.append(number)

        tasks = []
        for number in range(6):
            tasks.append(asyncio.create_task(wait(number)))
            await settle()
        for _ in range(6):
            guard.release()
            await settle()
        await asyncio.gather(*tasks)
        assert served == list(range(6))
        guard.release()
        assert guard.in_flight == 0

    asyncio.run(scenario())


def test_a_cancelled_waiter_leaves_the_queue_without_leaking_a_slot() -> None:
    async def scenario() -> None:
        guard, policy = protection(max_in_flight=1, max_wait_ms=5_000)
        holder, gone = request("checkout"), request("normal")
        assert await enter(policy, holder) is None
        waiting = asyncio.create_task(enter(policy, gone))
        await settle()
        assert guard.waiting["normal"] == 1
        waiting.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await waiting
        policy.on_finish(gone)  # the proxy finishes every policy whose on_request ran
        assert guard.waiting["normal"] == 0 and guard.in_flight == 1
        policy.on_finish(holder)
        assert guard.in_flight == 0

    asyncio.run(scenario())


def test_a_slot_granted_to_a_waiter_cancelled_before_it_ran_is_handed_on() -> None:
    async def scenario() -> None:
        guard, policy = protection(max_in_flight=1, max_wait_ms=5_000)
        holder, gone, next_in_line = request("checkout"), request("normal"), request("normal")
        assert await enter(policy, holder) is None
        first = asyncio.create_task(enter(policy, gone))
        await settle()
        second = asyncio.create_task(enter(policy, next_in_line))
        await settle()
        policy.on_finish(holder)  # the slot goes to `first`...
        first.cancel()  # ...which is cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await first
        policy.on_finish(gone)
        assert await second is None and guard.in_flight == 1
        policy.on_finish(next_in_line)
        assert guard.in_flight == 0 and sum(guard.waiting.values()) == 0

    asyncio.run(scenario())


def test_on_finish_releases_exactly_once_and_notes_it() -> None:
    guard, policy = protection(max_in_flight=2)
    ctx = request("batch")
    assert policy.on_request(ctx) is None and guard.in_flight == 1
    policy.on_finish(ctx)
    policy.on_finish(ctx)
    assert guard.in_flight == 0 and ctx.protection_slot == "released"


def test_anonymous_callers_count_as_normal_and_wait() -> None:
    async def scenario() -> None:
        guard, policy = protection(max_in_flight=1, max_wait_ms=10)
        holder = request("checkout")
        assert await enter(policy, holder) is None
        problem = await enter(policy, request(None))
        assert problem is not None and "'normal'" in problem.detail and "10 ms" in problem.detail
        policy.on_finish(holder)

    asyncio.run(scenario())


def test_an_unlisted_priority_is_named_with_the_class_it_counts_as() -> None:
    guard, policy = protection(max_in_flight=1)
    assert policy.on_request(request("checkout")) is None
    with pytest.raises(Problem, match="'reports' \\(counted as 'batch'\\)"):
        policy.on_request(request("reports"))


@pytest.mark.parametrize("document", [
    b'{"shed_from": "vip"}',
    b'{"classes": []}',
    b'{"classes": ["a", "a"], "shed_from": "a"}',
    b'{"reserved": {"vip": 2}}',
    b'{"max_in_flight": 4, "reserved": {"checkout": 4}}',
    b'{"max_in_flight": 0}',
    b'{"max_wait": 10}',
])
def test_bad_configs_are_refused_at_load_time(document: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(document, type=BackendProtectionConfig)


def test_a_policy_refuses_a_guard_built_with_other_limits() -> None:
    guard = UpstreamGuard(BackendProtectionConfig(max_in_flight=8), "erp")
    with pytest.raises(ValueError, match="erp"):
        BackendProtectionPolicy(BackendProtectionConfig(max_in_flight=16), guard)
    BackendProtectionPolicy(BackendProtectionConfig(max_in_flight=8, shed_from="batch", max_wait_ms=10), guard)


async def flood(config: BackendProtectionConfig, *, checkout_requests: int = 20,
                upstream_seconds: float = 0.05, batch_every: float = 0.002) -> dict[str, float]:
    """Batch requests arrive every `batch_every` s while one checkout caller calls in a loop."""
    guard = UpstreamGuard(config, "erp")
    policy = BackendProtectionPolicy(config, guard)
    busy = peak = 0
    outcomes: dict[str, list[bool]] = {"checkout": [], "batch": []}
    checkout_waits: list[float] = []

    async def call(priority: str) -> None:
        nonlocal busy, peak
        ctx = request(priority)
        started = time.perf_counter()
        try:
            problem = await enter(policy, ctx)
            if priority == "checkout":
                checkout_waits.append(time.perf_counter() - started)
            if problem is None:
                busy += 1
                peak = max(peak, busy)
                await asyncio.sleep(upstream_seconds)  # the slow ERP
                busy -= 1
            outcomes[priority].append(problem is None)
        finally:
            policy.on_finish(ctx)

    async def checkout_caller() -> None:
        for _ in range(checkout_requests):
            await call("checkout")
            await asyncio.sleep(0.01)

    steady = asyncio.create_task(checkout_caller())
    batch: list[asyncio.Task[None]] = []
    while not steady.done():
        batch.append(asyncio.create_task(call("batch")))
        await asyncio.sleep(batch_every)
    await asyncio.gather(steady, *batch)
    assert guard.in_flight == 0 and sum(guard.waiting.values()) == 0
    return {
        "checkout_ok": sum(outcomes["checkout"]), "checkout_total": len(outcomes["checkout"]),
        "checkout_wait_p50_ms": statistics.median(checkout_waits) * 1000,
        "checkout_wait_max_ms": max(checkout_waits) * 1000,
        "batch_ok": sum(outcomes["batch"]), "batch_total": len(outcomes["batch"]),
        "peak_in_flight": peak,
    }


def test_a_batch_flood_does_not_starve_checkout() -> None:
    protected = asyncio.run(flood(BackendProtectionConfig(max_in_flight=4)))
    # the same flood when checkout is just another class shed at saturation
    unprotected = asyncio.run(flood(BackendProtectionConfig(max_in_flight=4, classes=("any",), shed_from="any")))
    for name, numbers in (("priority classes", protected), ("one class", unprotected)):
        print(f"\n{name}: checkout {numbers['checkout_ok']}/{numbers['checkout_total']} ok, "
              f"wait p50 {numbers['checkout_wait_p50_ms']:.1f} ms max {numbers['checkout_wait_max_ms']:.1f} ms; "
              f"batch {numbers['batch_ok']}/{numbers['batch_total']} served "
              f"({1 - numbers['batch_ok'] / numbers['batch_total']:.0%} shed); peak in flight "
              f"{numbers['peak_in_flight']}")
    assert protected["checkout_ok"] == protected["checkout_total"] == 20
    assert protected["checkout_wait_max_ms"] < 250  # bounded by max_wait_ms, in practice one upstream call
    assert protected["batch_total"] >= 100 and protected["batch_ok"] < protected["batch_total"] / 2
    assert protected["peak_in_flight"] <= 4
    assert unprotected["checkout_ok"] < unprotected["checkout_total"]  # the flood is real: without classes it hurts
