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
