"""A real gateway process in front of the real sample ERP process, contracts published over HTTP."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from registry.tokens import SigningKey
from tests.conftest import free_port, spawn, stop, wait_http
from tests.e2e.reliability import Reliability

pytestmark = pytest.mark.e2e
READ_TIMEOUT = 1.0


CONSUMER = "channel-test"
SCOPES = ["inventory:read", "inventory:reserve", "orders:read", "orders:write", "returns:read", "returns:write"]


class GatewayProcess:
    """A running `govgate serve`, its signing key, and an HTTP client that calls as a subscribed channel."""

    def __init__(self, url: str, upstream_url: str, key: SigningKey) -> None:
        self.url = url
        self.upstream_url = upstream_url
        self.key = key
        self.admin = httpx.Client(base_url=url, timeout=30,
                                  headers={"Authorization": f"Bearer {self.registry_token('admin', ['admin'])}"})
        self.client = httpx.Client(base_url=url, timeout=30,
                                   headers={"Authorization": f"Bearer {self.gateway_token(CONSUMER, SCOPES)}"})

    def registry_token(self, subject: str, roles: list[str], **claims: Any) -> str:
        return self.key.issue(issuer="govgate", audience="govgate-registry", subject=subject, ttl_seconds=3600,
                              roles=roles, **claims)

    def gateway_token(self, consumer: str, scopes: list[str], **claims: Any) -> str:
        return self.key.issue(issuer="govgate", audience="govgate-gateway", subject=consumer, ttl_seconds=3600,
                              scope=" ".join(scopes), client_id=consumer, **claims)

    def last_upstream_request(self) -> dict[str, Any] | None:
        response = httpx.get(self.upstream_url + "/_debug/last-request", timeout=5)
        return response.json() if response.status_code == 200 else None


def publish(client: httpx.Client, entry: dict[str, Any], upstream: str | None = None,
            reviewers: list[httpx.Client] | None = None, verified_in: list[str] | None = None) -> None:
    """Register, upload and publish one catalog entry through the registry API (as an admin)."""
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
    change = added.json().get("change_request")
    if change and change["state"] == "open":  # review is on: the board approves it first
        for reviewer in reviewers or []:
            approved = reviewer.post(f"/registry/changes/{change['id']}/approve", json={"comment": "bootstrap"})
            assert approved.status_code == 200, approved.text
            if approved.json()["state"] == "approved":
                break
    for environment in verified_in or []:  # what the bootstrap's pipeline would have recorded
        client.post(f"/registry/contracts/{entry['name']}/versions/{version}/verifications",
                    json={"environment": environment, "passed": True, "summary": "bootstrap"})
    published = client.post(f"/registry/contracts/{entry['name']}/versions/{version}/publish")
    assert published.status_code == 200, published.text


@contextlib.contextmanager
def running_gateway(workdir: Path, sample_erp: str, catalog: list[dict], **overrides: Any) -> Iterator[GatewayProcess]:
    """`govgate serve` as a process with the bundled contracts published and a subscribed test channel."""
    config: dict[str, Any] = {
        "store": f"sqlite:///{workdir}/registry.db",
        "max_body_bytes": 64 * 1024,
        "usage_flush_seconds": 0.2,
        "review_required": False,  # these fixtures publish the catalog directly; test_workflow reviews
        "tokens": {"signing_key_file": str(workdir / "signing-key.pem")},
        "upstreams": {
            "erp": {"url": sample_erp, "read_timeout": READ_TIMEOUT},
            "returns": {"url": f"http://127.0.0.1:{free_port()}", "connect_timeout": 1.0},
        },
        **overrides,
    }
    key = SigningKey.load_or_create(workdir / "signing-key.pem")
    (workdir / "govgate.yaml").write_text(json.dumps(config))
    port = free_port()
    process = spawn(["-m", "gateway.cli", "serve", "--config", str(workdir / "govgate.yaml"), "--port", str(port)],
                    cwd=workdir)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", process=process)
        running = GatewayProcess(f"http://127.0.0.1:{port}", sample_erp, key)
        running.process, running.config_path = process, workdir / "govgate.yaml"
        running.reviewers = [httpx.Client(base_url=running.url, timeout=30, headers={
            "Authorization": f"Bearer {running.registry_token(name, ['board'], team='governance')}"})
            for name in ("board-1", "board-2")]
        for entry in catalog:
            publish(running.admin, entry, reviewers=running.reviewers,
                    verified_in=overrides.get("publish_requires_verification"))
        assert running.admin.post("/registry/plans", json={"name": "test", "rate_per_second": 1000,
                                                           "burst": 1000}).status_code == 200
        created = running.admin.post("/registry/consumers", json={"id": CONSUMER, "plan": "test", "scopes": SCOPES})
        assert created.status_code == 201, created.text
        running.client_secret = created.json()["client_secret"]
        for entry in catalog:
            if entry["kind"] == "openapi":
                subscribed = running.admin.post(f"/registry/consumers/{CONSUMER}/subscriptions",
                                                json={"contract": entry["name"], "major": 1})
                assert subscribed.status_code == 200, subscribed.text
        yield running
        running.client.close()
        running.admin.close()
        for reviewer in running.reviewers:
            reviewer.close()
    finally:
        stop(process)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, sample_erp: str, catalog: list[dict]) -> Iterator[GatewayProcess]:
    """govgate serve with the erp upstream, a dead `returns` upstream and a short read timeout."""
    with running_gateway(tmp_path_factory.mktemp("gateway"), sample_erp, catalog) as running:
        yield running


@pytest.fixture()
def reliability() -> type[Reliability]:
    return Reliability


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With GOVGATE_RELIABILITY_REPORT=path, write the table of inputs and faults this run tried."""
    import os

    target = os.environ.get("GOVGATE_RELIABILITY_REPORT")
    if not target or not Reliability.rows:
        return
    lines = ["# Reliability: bad input and faults", "",
             "<!-- generated by `GOVGATE_RELIABILITY_REPORT=docs/reliability.md make test`; do not edit by hand -->",
             "", "Every row is an assertion of the test suite (tests/e2e/test_bad_input.py, test_faults.py) against",
             "real processes: the input tried or the fault injected, what the caller saw, and what was lost.",
             f"Run result: {'passed' if exitstatus == 0 else 'FAILED'}.", "",
             "| area | input or fault | what the caller saw | lost |", "|---|---|---|---|"]
    lines += [f"| {a} | {t} | {s} | {lost} |" for a, t, s, lost in Reliability.rows]
    Path(target).write_text("\n".join(lines) + "\n")
