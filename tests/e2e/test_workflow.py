"""The governance story over HTTP: propose a breaking change, review it, publish it, deprecate v1, audit it all."""

from __future__ import annotations

import copy
import datetime as dt
import sqlite3
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
import yaml

from tests.e2e.conftest import GatewayProcess, running_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def governed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sample_erp: str,
             catalog: list[dict]) -> Iterator[GatewayProcess]:
    """The gateway process with review on, over a SQLite file or a PostgreSQL database of its own."""
    workdir = tmp_path_factory.mktemp("workflow")
    store = (f"sqlite:///{workdir}/registry.db" if request.param == "sqlite"
             else request.getfixturevalue("postgres_databases").create())
    with running_gateway(workdir, sample_erp, catalog, store=store, review_required=True,
                         min_sunset_days=30) as running:
        running.workdir, running.store = workdir, store
        yield running


def tamper(gw: GatewayProcess, statement: str) -> None:
    """Change the gateway's database behind its back, as someone with database access would."""
    if gw.store.startswith("sqlite"):
        with sqlite3.connect(gw.workdir / "registry.db") as db:
            db.execute(statement)
    else:
        with psycopg.connect(gw.store, autocommit=True) as db:
            db.execute(statement.encode())


def client(gw: GatewayProcess, subject: str, roles: list[str], team: str) -> httpx.Client:
    token = gw.registry_token(subject, roles, team=team)
    return httpx.Client(base_url=gw.url, timeout=30, headers={"Authorization": f"Bearer {token}"})


def test_a_breaking_change_from_proposal_to_deprecation(governed: GatewayProcess, catalog: list[dict]) -> None:
    gw = governed
    order_id = "00000000-0000-4000-8000-000000000000"
    gw.client.post(f"/erp.sales-orders/v1/orders/{order_id}/cancel", json={"reason": "other"})  # real traffic
    deadline = time.monotonic() + 5
    while not any(u["operation"] == "cancelOrder" for u in gw.admin.get("/registry/contracts/erp.sales-orders/usage")
                  .json()):
        assert time.monotonic() < deadline, "the usage record did not arrive"
        time.sleep(0.1)
    # an integrator of the owning team, who also sits on the board
    integrator = client(gw, "ian", ["integrator", "board"], "team-erp")
    board_erp = client(gw, "bea", ["board"], "team-erp")
    board_1, board_2 = gw.reviewers
    orders = next(e for e in catalog if e["name"] == "erp.sales-orders")["loaded"]
    breaking = copy.deepcopy(orders)
    del breaking["paths"]["/orders/{orderId}/cancel"]
    url = "/registry/contracts/erp.sales-orders/versions"

    breaking["info"]["version"] = "1.1.0"
    refused = integrator.post(url, content=yaml.safe_dump(breaking), headers={"content-type": "application/yaml"})
    assert refused.status_code == 400 and "propose 2.0.0" in refused.json()["detail"]

    breaking["info"]["version"] = "2.0.0"
    proposed = integrator.post(url, content=yaml.safe_dump(breaking), headers={"content-type": "application/yaml"})
    assert proposed.status_code == 201, proposed.text
    change = proposed.json()["change_request"]
    assert proposed.json()["version"]["state"] == "in_review"
    assert change["state"] == "open" and change["required_approvals"] == 2 and change["required_bump"] == "major"
    assert change["findings"]["ERR"] >= 1
    assert "api-operation-removed-without-deprecation" in [c["id"] for c in change["changes"]["changes"]]
    affected = change["affected_consumers"]
    assert affected and affected[0]["consumer"] == "channel-test"
    assert affected[0]["operation"] == "POST /orders/{orderId}/cancel"

    change_url = f"/registry/changes/{change['id']}"
    own = integrator.post(change_url + "/approve", json={"comment": "lgtm"})
    assert own.status_code == 403 and "separation of duties" in own.json()["detail"]
    team = board_erp.post(change_url + "/approve", json={"comment": "ours"})
    assert team.status_code == 403 and "owning team" in team.json()["detail"]
    early = gw.admin.post(url + "/2.0.0/publish")
    assert early.status_code == 409 and "approvals" in early.json()["detail"]

    etag = board_1.get(change_url).headers["etag"]
    first = board_1.post(change_url + "/approve", json={"comment": "consumers informed"}, headers={"If-Match": etag})
    assert first.status_code == 200 and first.json()["state"] == "open"
    stale = board_2.post(change_url + "/approve", json={"comment": "ok"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert board_1.post(change_url + "/approve", json={"comment": "again"}).status_code == 409
    second = board_2.post(change_url + "/approve", json={"comment": "ok"})
    assert second.status_code == 200 and second.json()["state"] == "approved"

    assert gw.admin.post(url + "/2.0.0/publish").status_code == 200
    assert gw.admin.get(change_url).json()["state"] == "published"
    gw.admin.post("/registry/consumers/channel-test/subscriptions", json={"contract": "erp.sales-orders", "major": 2})
    assert gw.client.get("/erp.sales-orders/v2/orders").status_code == 200
    assert gw.client.get("/erp.sales-orders/v1/orders").status_code == 200  # side by side, no restart

    too_soon = (dt.date.today() + dt.timedelta(days=5)).isoformat()
    assert gw.admin.post(url + "/1.0.0/deprecate", json={"sunset": too_soon}).status_code == 400
    sunset = (dt.date.today() + dt.timedelta(days=45)).isoformat()
    assert gw.admin.post(url + "/1.0.0/deprecate", json={"sunset": sunset, "successor": "2.0.0"}).status_code == 200
    assert "sunset" in gw.client.get("/erp.sales-orders/v1/orders").headers

    verified = gw.admin.get("/registry/audit/verify").json()
    assert verified["ok"] is True and verified["records"] > 10
    actions = [r["action"] for r in gw.admin.get("/registry/audit", params={"target": "erp.sales-orders@2.0.0"}).json()]
    assert actions == ["version.proposed", "version.published"]
    votes = gw.admin.get("/registry/audit", params={"target": f"change/{change['id']}"}).json()
    assert [r["action"] for r in votes] == ["change.approve-vote", "change.approve-vote", "change.approved"]
    assert all(r["correlation_id"] for r in votes)

    # someone edits a record in the database: the chain no longer verifies
    tamper(gw, "UPDATE audit SET actor = 'mallory' WHERE action = 'version.published'")
    broken = gw.admin.get("/registry/audit/verify").json()
    assert broken["ok"] is False and "altered" in " ".join(broken["problems"])


def test_one_rejection_closes_and_the_proposer_may_withdraw(governed: GatewayProcess, catalog: list[dict]) -> None:
    gw = governed
    integrator = client(gw, "ivy", ["integrator"], "team-wms")
    inventory = copy.deepcopy(next(e for e in catalog if e["name"] == "wms.inventory")["loaded"])
    url = "/registry/contracts/wms.inventory/versions"
    inventory["info"]["version"] = "1.1.0"
    inventory["info"]["description"] = "Stock positions, with a note."
    first = integrator.post(url, json=inventory).json()["change_request"]
    assert first["required_approvals"] == 1 and first["findings"].get("ERR", 0) == 0
    rejected = gw.reviewers[0].post(f"/registry/changes/{first['id']}/reject", json={"comment": "not now"})
    assert rejected.json()["state"] == "rejected"
    assert gw.reviewers[1].post(f"/registry/changes/{first['id']}/approve", json={}).status_code == 409
    assert gw.admin.get(url + "/1.1.0").json()["state"] == "rejected"
    inventory["info"]["version"] = "1.2.0"
    second = integrator.post(url, json=inventory).json()["change_request"]
    other = client(gw, "olga", ["integrator"], "team-wms")
    assert other.post(f"/registry/changes/{second['id']}/withdraw", json={}).status_code == 403
    withdrawn = integrator.post(f"/registry/changes/{second['id']}/withdraw", json={"comment": "superseded"})
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"
    assert integrator.post(f"/registry/changes/{second['id']}/withdraw", json={}).status_code == 409
