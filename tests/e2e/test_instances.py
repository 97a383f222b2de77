"""Several gateway instances sharing one Redis and one registry store."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, spawn, stop, wait_http
from tests.e2e.conftest import GatewayProcess, running_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_instances(tmp_path_factory: pytest.TempPathFactory, sample_erp: str, catalog: list[dict],
                  redis_url: str) -> Iterator[tuple[GatewayProcess, str]]:
    """Instance A (with the fixtures' setup) and instance B started from A's configuration."""
    workdir: Path = tmp_path_factory.mktemp("instances")
    state = {"backend": "redis", "redis_url": redis_url, "key_prefix": f"govgate-test:{uuid.uuid4().hex[:8]}:"}
    with running_gateway(workdir, sample_erp, catalog, state=state) as first:
        port = free_port()
        second = spawn(["-m", "gateway.cli", "serve", "--config", str(first.config_path), "--port", str(port)],
                       cwd=workdir)
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz", process=second)
            yield first, f"http://127.0.0.1:{port}"
        finally:
            stop(second)


def test_a_change_through_one_instance_reaches_the_other_within_a_second(
        two_instances: tuple[GatewayProcess, str]) -> None:
    first, second_url = two_instances
    assert first.admin.post("/registry/consumers", json={"id": "channel-late", "plan": "test",
                                                         "scopes": ["inventory:read"]}).status_code == 201
    token = first.gateway_token("channel-late", ["inventory:read"])
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(second_url + "/wms.inventory/v1/positions", headers=headers).status_code == 403
    started = time.monotonic()
    first.admin.post("/registry/consumers/channel-late/subscriptions", json={"contract": "wms.inventory", "major": 1})
    while httpx.get(second_url + "/wms.inventory/v1/positions", headers=headers).status_code != 200:
        assert time.monotonic() - started < 1.0, "instance B did not reload within a second"
        time.sleep(0.02)
    print(f"instance B served the new subscription {1000 * (time.monotonic() - started):.0f} ms after the change")


def test_two_instances_enforce_one_global_rate_limit(two_instances: tuple[GatewayProcess, str]) -> None:
    """Five times the limit for 10 s, split over both instances: admitted stays within ±2% of the limit."""
    import asyncio

    import aiohttp

    first, second_url = two_instances
    rate, burst, seconds, per_instance = 20, 10, 10.0, 50  # 2 x 50 req/s = 5 x the rate
    assert first.admin.post("/registry/plans", json={"name": "limited", "rate_per_second": rate,
                                                     "burst": burst}).status_code == 200
    assert first.admin.post("/registry/consumers", json={"id": "channel-flood", "plan": "limited",
                                                         "scopes": ["inventory:read"]}).status_code == 201
    first.admin.post("/registry/consumers/channel-flood/subscriptions", json={"contract": "wms.inventory", "major": 1})
    time.sleep(0.3)  # both instances have reloaded (measured ~40 ms)
    headers = {"Authorization": f"Bearer {first.gateway_token('channel-flood', ['inventory:read'])}"}

    async def hammer(base: str, start: float, statuses: list[int], times: list[float]) -> None:
        async with aiohttp.ClientSession(headers=headers) as session:
            sent = 0
            while (now := time.monotonic()) < start + seconds:
                target = start + sent / per_instance
                if target > now:
                    await asyncio.sleep(target - now)
                times.append(time.monotonic())
                async with session.get(base + "/wms.inventory/v1/positions", params={"limit": 1}) as response:
                    statuses.append(response.status)
                    if response.status == 429:
                        assert int(response.headers["Retry-After"]) >= 1
                sent += 1

    async def both() -> tuple[list[int], list[float]]:
        statuses: list[int] = []
        times: list[float] = []
        start = time.monotonic() + 0.1
        await asyncio.gather(hammer(first.url, start, statuses, times), hammer(second_url, start, statuses, times))
        return statuses, times

    statuses, times = asyncio.run(both())
    admitted, refused = statuses.count(200), statuses.count(429)
    span = max(times) - min(times)
    expected = rate * span + burst
    print(f"sent {len(statuses)}, admitted {admitted}, refused {refused}, span {span:.3f} s, "
          f"expected {expected:.1f}, off by {100 * (admitted - expected) / expected:+.2f}%")
    assert admitted + refused == len(statuses)
    assert len(statuses) >= 4.5 * rate * seconds
    assert abs(admitted - expected) <= 0.02 * expected
