"""A real gateway process in front of the real sample ERP process, contracts published over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import free_port, spawn, stop, wait_http

pytestmark = pytest.mark.e2e
READ_TIMEOUT = 1.0


class GatewayProcess:
    """A running `govgate serve` and an HTTP client for it."""

    def __init__(self, url: str, upstream_url: str) -> None:
        self.url = url
        self.upstream_url = upstream_url
        self.client = httpx.Client(base_url=url, timeout=30)

    def last_upstream_request(self) -> dict[str, Any] | None:
        response = httpx.get(self.upstream_url + "/_debug/last-request", timeout=5)
        return response.json() if response.status_code == 200 else None


def publish(client: httpx.Client, entry: dict[str, Any], upstream: str | None = None) -> None:
    """Register, upload and publish one catalog entry through the registry API."""
    contract = {"name": entry["name"], "kind": entry["kind"], "owner": entry["owner"],
                "description": entry.get("description", "")}
    if entry["kind"] == "openapi":
        contract["upstream"] = upstream or entry["upstream"]
    assert client.post("/registry/contracts", json=contract).status_code in (200, 201)
    params = {"version": entry["version"]} if "version" in entry else {}
    added = client.post(f"/registry/contracts/{entry['name']}/versions", params=params,
                        content=yaml.safe_dump(entry["loaded"]), headers={"content-type": "application/yaml"})
    assert added.status_code in (200, 201), added.text
    version = added.json()["version"]["version"]
    published = client.post(f"/registry/contracts/{entry['name']}/versions/{version}/publish")
    assert published.status_code == 200, published.text


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, sample_erp: str, catalog: list[dict]) -> Iterator[GatewayProcess]:
    """govgate serve with the erp upstream, a dead `returns` upstream and a short read timeout."""
    workdir: Path = tmp_path_factory.mktemp("gateway")
    config = {
        "store": f"sqlite:///{workdir}/registry.db",
        "max_body_bytes": 64 * 1024,
        "upstreams": {
            "erp": {"url": sample_erp, "read_timeout": READ_TIMEOUT},
            "returns": {"url": f"http://127.0.0.1:{free_port()}", "connect_timeout": 1.0},
        },
    }
    (workdir / "govgate.yaml").write_text(json.dumps(config))
    port = free_port()
    process = spawn(["-m", "gateway.cli", "serve", "--config", str(workdir / "govgate.yaml"), "--port", str(port)],
                    cwd=workdir)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", process=process)
        running = GatewayProcess(f"http://127.0.0.1:{port}", sample_erp)
        for entry in catalog:
            publish(running.client, entry)
        yield running
        running.client.close()
    finally:
        stop(process)
