"""The /registry REST API over each real store (a SQLite file, a PostgreSQL database), in process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.config import GatewayConfig, TokensConfig
from registry.tokens import SigningKey

CONTRACT = {"name": "erp.sales-orders", "kind": "openapi", "owner": "team-erp", "upstream": "erp",
            "description": "orders"}


@pytest.fixture()
def key(tmp_path: Path) -> SigningKey:
    return SigningKey.load_or_create(tmp_path / "signing-key.pem")


def token(key: SigningKey, subject: str, *roles: str, audience: str = "govgate-registry", **claims: Any) -> str:
    return key.issue(issuer="govgate", audience=audience, subject=subject, ttl_seconds=600, roles=list(roles), **claims)


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path: Path, key: SigningKey) -> Iterator[TestClient]:
    """The registry on each store backend (an empty one per test) with an admin's token on every request."""
    store = (f"sqlite:///{tmp_path}/registry.db" if request.param == "sqlite"
             else request.getfixturevalue("postgres_store_url"))
    app = create_app(GatewayConfig(store=store, review_required=False,
                                   tokens=TokensConfig(signing_key_file=str(tmp_path / "signing-key.pem"))))
    with TestClient(app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {token(key, 'ada', 'admin', 'integrator')}"
        yield test_client


@pytest.fixture()
def orders(catalog: list[dict]) -> dict[str, Any]:
    return next(e for e in catalog if e["name"] == "erp.sales-orders")["loaded"]


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["correlationId"] == response.headers["x-correlation-id"]
    return body


def test_register_upload_publish_and_serve(client: TestClient, orders: dict[str, Any]) -> None:
    assert client.post("/registry/contracts", json=CONTRACT).status_code == 201
    assert client.post("/registry/contracts", json=CONTRACT).status_code == 200  # same definition: no-op
    added = client.post("/registry/contracts/erp.sales-orders/versions", content=yaml.safe_dump(orders),
                        headers={"content-type": "application/yaml"})
    assert added.status_code == 201, added.text
    version = added.json()["version"]
    assert version["version"] == "1.0.0" and version["state"] == "draft" and len(version["sha256"]) == 64
    assert client.get("/readyz").json()["operations"] == 0  # nothing published yet

    published = client.post("/registry/contracts/erp.sales-orders/versions/1.0.0/publish")
    assert published.status_code == 200 and published.json()["state"] == "published"
    assert client.get("/readyz").json()["operations"] == 4  # the routing table reloaded in place
    assert [v["version"] for v in client.get("/registry/published").json()] == ["1.0.0"]
    detail = client.get("/registry/contracts/erp.sales-orders").json()
    assert detail["contract"]["owner"] == "team-erp" and len(detail["versions"]) == 1
    document = client.get("/registry/contracts/erp.sales-orders/versions/1.0.0/document")
    assert document.headers["content-type"].startswith("application/json")
    assert document.json() == orders


def test_versions_are_immutable(client: TestClient, orders: dict[str, Any]) -> None:
    client.post("/registry/contracts", json=CONTRACT)
    url = "/registry/contracts/erp.sales-orders/versions"
    assert client.post(url, json=orders).status_code == 201
    # the same content in another key order and as YAML is the same version
    reordered = dict(reversed(list(orders.items())))
    again = client.post(url, content=yaml.safe_dump(reordered, sort_keys=False),
                        headers={"content-type": "application/yaml"})
    assert again.status_code == 200 and again.json()["created"] is False
    changed = json.loads(json.dumps(orders))
    changed["info"]["title"] = "Sales orders, renamed"
    body = problem(client.post(url, json=changed), 409)
    assert "immutable" in body["detail"]
    stored = client.get(url + "/1.0.0/document").json()
    assert stored["info"]["title"] == orders["info"]["title"]


def test_invalid_documents_are_refused_with_their_errors(client: TestClient, orders: dict[str, Any]) -> None:
    client.post("/registry/contracts", json=CONTRACT)
    url = "/registry/contracts/erp.sales-orders/versions"
    broken = json.loads(json.dumps(orders))
    del broken["info"]["title"]
    broken["paths"]["/orders"]["post"]["responses"] = "nope"
    body = problem(client.post(url, json=broken), 422)
    assert len(body["errors"]) >= 2
    dangling = json.loads(json.dumps(orders))
    dangling["paths"]["/orders"]["post"]["requestBody"] = {"$ref": "#/components/requestBodies/Missing"}
    assert "points nowhere" in json.dumps(problem(client.post(url, json=dangling), 422))
    remote = json.loads(json.dumps(orders))
    remote["components"]["schemas"]["Evil"] = {"$ref": "http://169.254.169.254/latest/meta-data"}
    assert "remote" in json.dumps(problem(client.post(url, json=remote), 422))
    swagger = {"swagger": "2.0", "info": {"title": "x", "version": "1.0.0"}, "paths": {}}
    problem(client.post(url, json=swagger), 422)
    problem(client.post(url, content=b"a: [unclosed", headers={"content-type": "application/yaml"}), 422)
    problem(client.post(url, content=b"- just\n- a list\n", headers={"content-type": "application/yaml"}), 422)
    bomb = b"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    problem(client.post(url, content=bomb, headers={"content-type": "application/yaml"}), 422)
    problem(client.post(url, content=b"<xml/>", headers={"content-type": "application/xml"}), 415)
    problem(client.post(url, content=b"", headers={"content-type": "application/json"}), 400)
    problem(client.post(url, json=orders, params={"version": "1.0"}), 400)
    problem(client.post(url, json=orders, params={"version": "2.0.0"}), 400)  # disagrees with info.version
    assert client.get("/registry/contracts/erp.sales-orders/versions").json() == []


def test_unknown_things_and_bad_fields(client: TestClient) -> None:
    problem(client.get("/registry/contracts/nope"), 404)
    problem(client.get("/registry/contracts/nope/versions/1.0.0"), 404)
    problem(client.post("/registry/contracts/nope/versions/1.0.0/publish"), 404)
    body = problem(client.post("/registry/contracts", json={**CONTRACT, "name": "../../etc/passwd"}), 400)
    assert body["errors"]
    problem(client.post("/registry/contracts", json={**CONTRACT, "kind": "graphql"}), 400)
    problem(client.post("/registry/contracts", json={**CONTRACT, "upstream": None}), 400)
    for reserved in ("registry", "metrics", "events"):  # the gateway serves these paths itself
        assert "reserved" in problem(client.post("/registry/contracts", json={**CONTRACT, "name": reserved}), 400)[
            "detail"]
    problem(client.post("/registry/contracts", content=b"{not json", headers={"content-type": "application/json"}), 400)
    client.post("/registry/contracts", json=CONTRACT)
    problem(client.post("/registry/contracts", json={**CONTRACT, "owner": "team-other"}), 409)


def test_event_contracts_take_json_schema(client: TestClient, catalog: list[dict]) -> None:
    entry = next(e for e in catalog if e["kind"] == "event")
    client.post("/registry/contracts", json={"name": entry["name"], "kind": "event", "owner": entry["owner"]})
    url = f"/registry/contracts/{entry['name']}/versions"
    problem(client.post(url, json=entry["loaded"]), 400)  # an event schema has no info.version: say it
    assert client.post(url, json=entry["loaded"], params={"version": "1.0.0"}).status_code == 201
    problem(client.post(url, json={"type": "object", "minProperties": "three"}, params={"version": "1.1.0"}), 422)


def test_registry_serves_its_own_openapi(client: TestClient) -> None:
    spec = client.get("/registry/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    paths = spec["paths"]
    assert "/registry/contracts/{name}/versions" in paths
    upload = paths["/registry/contracts/{name}/versions"]["post"]["requestBody"]["content"]
    assert "application/yaml" in upload and "application/json" in upload
    assert not any(p.startswith("/erp") for p in paths)


def test_a_new_version_carries_its_compatibility_report(client: TestClient, orders: dict[str, Any]) -> None:
    client.post("/registry/contracts", json=CONTRACT)
    url = "/registry/contracts/erp.sales-orders/versions"
    client.post(url, json=orders)
    client.post(url + "/1.0.0/publish")
    assert client.get(url + "/1.0.0/changes").json() is None  # nothing to compare the first version with

    breaking = json.loads(json.dumps(orders))
    breaking["info"]["version"] = "1.1.0"
    del breaking["paths"]["/orders/{orderId}/cancel"]
    added = client.post(url, json=breaking).json()["version"]
    assert added["base_version"] == "1.0.0" and added["required_bump"] == "major"
    report = client.get(url + "/1.1.0/changes").json()
    ids = [c["id"] for c in report["changes"]]
    assert "api-operation-removed-without-deprecation" in ids
    assert ids[0] == "semver-bump-too-small"  # 1.1.0 is a minor bump for a breaking change
    assert report["semver"] == {"required_bump": "major", "old_version": "1.0.0", "new_version": "1.1.0",
                                "proposed_bump": "minor"}


def test_event_contracts_are_compared_in_their_mode(client: TestClient, catalog: list[dict]) -> None:
    entry = next(e for e in catalog if e["name"] == "events.inventory-adjusted")
    client.post("/registry/contracts", json={"name": entry["name"], "kind": "event", "owner": entry["owner"],
                                             "compatibility": "FORWARD"})
    url = f"/registry/contracts/{entry['name']}/versions"
    client.post(url, json=entry["loaded"], params={"version": "1.0.0"})
    looser = json.loads(json.dumps(entry["loaded"]))
    looser.pop("additionalProperties", None)
    added = client.post(url, json=looser, params={"version": "1.1.0"}).json()["version"]
    assert added["required_bump"] == "minor"
    report = client.get(url + "/1.1.0/changes").json()
    assert [(c["id"], c["level"]) for c in report["changes"]] == [("event-additional-properties-opened", "WARN")]


def test_every_registry_endpoint_needs_a_token_with_a_role(client: TestClient, key: SigningKey, tmp_path: Path,
                                                          orders: dict[str, Any]) -> None:
    anonymous = {"Authorization": ""}
    forged = SigningKey.load_or_create(tmp_path / "not-ours.pem").issue(
        issuer="govgate", audience="govgate-registry", subject="eve", ttl_seconds=60, roles=["admin"])
    body = problem(client.get("/registry/contracts", headers=anonymous), 401)
    assert "bearer" in body["detail"]
    assert client.get("/registry/contracts", headers=anonymous).headers["www-authenticate"].startswith("Bearer")
    for bad in ("Bearer not.a.jwt", "Basic YWRhOmFkYQ==",
                f"Bearer {token(key, 'ada', 'admin', audience='govgate-gateway')}",
                f"Bearer {forged}"):
        problem(client.get("/registry/contracts", headers={"Authorization": bad}), 401)
    board = {"Authorization": f"Bearer {token(key, 'bo', 'board')}"}
    assert client.get("/registry/contracts", headers=board).status_code == 200
    body = problem(client.post("/registry/contracts", json=CONTRACT, headers=board), 403)
    assert "integrator" in body["detail"]
    integrator = {"Authorization": f"Bearer {token(key, 'ian', 'integrator')}"}
    assert client.post("/registry/contracts", json=CONTRACT, headers=integrator).status_code == 201
    assert client.post("/registry/contracts/erp.sales-orders/versions", json=orders, headers=integrator).status_code == 201
    problem(client.post("/registry/contracts/erp.sales-orders/versions/1.0.0/publish", headers=integrator), 403)
    problem(client.get("/registry/consumers", headers=integrator), 403)
    problem(client.post("/registry/plans", json={"name": "x"}, headers=integrator), 403)
    assert client.get("/registry/openapi.json", headers=anonymous).status_code == 200


def test_consumers_plans_and_subscriptions(client: TestClient, orders: dict[str, Any]) -> None:
    problem(client.post("/registry/consumers", json={"id": "pos-17", "plan": "nope"}), 400)
    assert client.post("/registry/plans", json={"name": "pos", "rate_per_second": 5, "burst": 10,
                                                "priority": "checkout"}).status_code == 200
    problem(client.post("/registry/plans", json={"name": "bad", "rate_per_second": -1}), 400)
    created = client.post("/registry/consumers", json={"id": "pos-17", "plan": "pos", "scopes": ["orders:read"]})
    assert created.status_code == 201
    secret = created.json()["client_secret"]
    assert secret.startswith("gg_secret_") and len(secret) > 30
    problem(client.post("/registry/consumers", json={"id": "pos-17", "plan": "pos"}), 409)
    problem(client.post("/registry/consumers/pos-17/subscriptions", json={"contract": "erp.sales-orders", "major": 1}),
            404)  # no such contract yet
    client.post("/registry/contracts", json=CONTRACT)
    subscribed = client.post("/registry/consumers/pos-17/subscriptions", json={"contract": "erp.sales-orders",
                                                                               "major": 1})
    assert subscribed.json()["subscriptions"] == [{"contract": "erp.sales-orders", "major": 1}]
    key = client.post("/registry/consumers/pos-17/api-keys").json()["api_key"]
    assert key.startswith("gg_key_")
    listed = client.get("/registry/consumers/pos-17").text
    assert secret not in listed and key not in listed  # secrets are shown once and stored hashed
    ended = client.delete("/registry/consumers/pos-17/subscriptions/erp.sales-orders/1")
    assert ended.status_code == 200 and ended.json()["subscriptions"] == []
