"""Backend protection with real processes: a low-priority flood cannot starve checkout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest

from tests.e2e.conftest import GatewayProcess, running_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, sample_erp: str, catalog: list[dict]) -> Iterator[GatewayProcess]:
    upstreams = {"erp": {"url": sample_erp, "read_timeout": 5, "protection": {"max_in_flight": 4, "max_wait_ms": 2000},
                         "circuit_breaker": {"enabled": False}}}
    with running_gateway(tmp_path_factory.mktemp("guarded"), sample_erp, catalog, upstreams=upstreams) as gw:
        for plan, priority in (("flood", "batch"), ("web", "checkout")):
            assert gw.admin.post("/registry/plans", json={"name": plan, "rate_per_second": 10_000, "burst": 10_000,
                                                          "priority": priority}).status_code == 200
            assert gw.admin.post("/registry/consumers", json={"id": f"channel-{plan}", "plan": plan,
                                                              "scopes": ["inventory:read"]}).status_code == 201
            gw.admin.post(f"/registry/consumers/channel-{plan}/subscriptions",
                          json={"contract": "wms.inventory", "major": 1})
        yield gw


def test_a_batch_flood_cannot_starve_checkout(guarded: GatewayProcess) -> None:
    url = guarded.url + "/wms.inventory/v1/positions?limit=1"
    flood_headers = {"Authorization": f"Bearer {guarded.gateway_token('channel-flood', ['inventory:read'])}",
                     "X-Upstream-Delay-Ms": "150"}
    web_headers = {"Authorization": f"Bearer {guarded.gateway_token('channel-web', ['inventory:read'])}",
                   "X-Upstream-Delay-Ms": "20"}

    async def scenario() -> tuple[list[int], list[tuple[int, float]]]:
        flood: list[int] = []
        web: list[tuple[int, float]] = []
        stop_at = time.monotonic() + 3.0
        async with aiohttp.ClientSession() as session:

            async def flooder() -> None:
                while time.monotonic() < stop_at:
                    async with session.get(url, headers=flood_headers) as response:
                        flood.append(response.status)

            async def checkout() -> None:
                await asyncio.sleep(0.3)  # the flood has filled the upstream by now
                for _ in range(20):
                    started = time.monotonic()
                    async with session.get(url, headers=web_headers) as response:
                        web.append((response.status, time.monotonic() - started))

            await asyncio.gather(*(flooder() for _ in range(24)), checkout())
        return flood, web

    flood, web = asyncio.run(scenario())
    waits = sorted(w for _, w in web)
    print(f"batch: {flood.count(200)} served, {flood.count(503)} shed of {len(flood)}; "
          f"checkout: {sum(1 for s, _ in web if s == 200)}/20 served, median {1000 * waits[10]:.0f} ms, "
          f"max {1000 * waits[-1]:.0f} ms")
    assert [s for s, _ in web] == [200] * 20
    assert flood.count(503) > flood.count(200)  # the flood is shed, not queued ahead of checkout
    assert waits[-1] < 1.0
