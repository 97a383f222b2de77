"""Webhooks over real HTTP: CloudEvents for workflow events, HMAC-signed, retried after a failure."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, spawn, stop, wait_http
from tests.e2e.conftest import GatewayProcess, running_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture()
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "received.jsonl"
    port = free_port()
    process = spawn(["-m", "tests.e2e.webhook_receiver", str(port), str(log), "1"])  # the first POST fails
    try:
        wait_http(f"http://127.0.0.1:{port}/", process=process)
        yield f"http://127.0.0.1:{port}/hooks/govgate", log
    finally:
        stop(process)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sample_erp: str,
           catalog: list[dict]) -> Iterator[GatewayProcess]:
    """Review on, over a SQLite file or a PostgreSQL database of its own (the outbox lives in the store)."""
    workdir = tmp_path_factory.mktemp("webhooks")
    store = (f"sqlite:///{workdir}/registry.db" if request.param == "sqlite"
             else request.getfixturevalue("postgres_databases").create())
    with running_gateway(workdir, sample_erp, catalog, store=store, review_required=True) as running:
        yield running


def test_workflow_events_reach_a_subscriber_signed_and_retried(server: GatewayProcess, receiver: tuple[str, Path],
                                                               catalog: list[dict]) -> None:
    url, log = receiver
    created = server.admin.post("/registry/webhooks", json={"url": url, "events": [
        "dev.govgate.change.opened", "dev.govgate.change.approved", "dev.govgate.version.published"]})
    assert created.status_code == 201, created.text
    hook, secret = created.json()["webhook"], created.json()["secret"]
    assert secret not in server.admin.get("/registry/webhooks").text  # shown once, never stored

    integrator = server.registry_token("ian", ["integrator"], team="team-erp")
    document = copy.deepcopy(next(e for e in catalog if e["name"] == "erp.sales-orders")["loaded"])
    document["info"]["version"] = "1.1.0"
    document["info"]["description"] = "Orders, now with a longer description."
    proposed = httpx.post(server.url + "/registry/contracts/erp.sales-orders/versions", json=document,
                          headers={"Authorization": f"Bearer {integrator}"}).json()["change_request"]
    server.reviewers[0].post(f"/registry/changes/{proposed['id']}/approve", json={"comment": "fine"})
    assert server.admin.post("/registry/contracts/erp.sales-orders/versions/1.1.0/publish").status_code == 200

    deadline = time.monotonic() + 15
    while True:
        received = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        delivered = [r for r in received if r["status"] == 204]
        if len(delivered) >= 3:
            break
        assert time.monotonic() < deadline, f"only {len(delivered)} deliveries arrived: {received}"
        time.sleep(0.2)
    # a retried delivery arrives after later events: order by the event id (the audit sequence)
    events = sorted((json.loads(r["body"]) for r in delivered), key=lambda e: int(e["id"].split("-")[1]))
    assert [e["type"] for e in events] == ["dev.govgate.change.opened", "dev.govgate.change.approved",
                                           "dev.govgate.version.published"]
    assert all(e["specversion"] == "1.0" and e["source"] == "/govgate/registry" for e in events)
    assert events[2]["subject"] == "erp.sales-orders@1.1.0" and events[2]["data"]["actor"] == "admin"
    for record in delivered:
        timestamp, digest = (part.split("=", 1)[1] for part in record["headers"]["Govgate-Signature"].split(","))
        expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + record["body"].encode(), hashlib.sha256)
        assert hmac.compare_digest(expected.hexdigest(), digest)
    log_entries = server.admin.get(f"/registry/webhooks/{hook['id']}/deliveries").json()
    assert all(d["state"] == "delivered" for d in log_entries)
    assert max(d["attempts"] for d in log_entries) == 2  # the first attempt got a 500 and was retried
