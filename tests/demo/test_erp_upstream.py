"""The sample ERP upstream, with the contracts (through openapi-core) as the oracle for every response."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import yaml
from litestar.testing import TestClient
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.deserializing.media_types.util import json_loads
from werkzeug.datastructures import Headers, ImmutableMultiDict

from gateway.demo import erp

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts" / "openapi"
GATEWAY = "https://gateway.retail.example"
WMS_PATHS = ("/positions", "/reservations")
SEEDED_POSITIONS = sum(len(row.split()) - 1 for row in erp.SEED.strip().splitlines())


@dataclass
class ContractRequest:
    """openapi_core.protocols.Request for a call as the gateway would have received it."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters


@dataclass
class ContractResponse:
    """openapi_core.protocols.Response built from an httpx response."""

    status_code: int
    content_type: str
    headers: Headers
    data: bytes


class Upstream:
    """A TestClient whose every response must satisfy the contract of the operation called."""

    def __init__(self, client: TestClient, contracts: dict[str, OpenAPI]) -> None:
        self.client, self.contracts = client, contracts

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request and validate the response (not the request, not security) against the contract."""
        response = self.client.request(method, path, **kwargs)
        sent = response.request
        name = "wms.inventory" if sent.url.path.startswith(WMS_PATHS) else "erp.sales-orders"
        request = ContractRequest(
            host_url=GATEWAY,
            path=f"/{name}/v1{sent.url.path}",  # the contract's server URL carries the gateway prefix
            method=sent.method.lower(),
            body=sent.content or None,
            content_type=sent.headers.get("content-type", "application/octet-stream"),
            parameters=RequestParameters(query=ImmutableMultiDict(list(sent.url.params.multi_items())),
                                         header=Headers(list(sent.headers.items())), cookie={}),
        )
        self.contracts[name].validate_response(request, ContractResponse(
            response.status_code, response.headers.get("content-type", ""), Headers(list(response.headers.items())),
            response.content))
        return response


@pytest.fixture(scope="module")
def contracts() -> dict[str, OpenAPI]:
    # openapi-core 0.23 parses only application/json and vnd.api+json as JSON; problem+json must be added
    config = Config(extra_media_type_deserializers={"application/problem+json": json_loads})
    return {name: OpenAPI.from_file_path(str(CONTRACTS / f"{name}.yaml"), config=config)
            for name in ("erp.sales-orders", "wms.inventory")}


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in CONTRACTS.glob("*.yaml")}


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(app=erp.create_app()) as test_client:
        yield test_client


@pytest.fixture
def upstream(client: TestClient, contracts: dict[str, OpenAPI]) -> Upstream:
    return Upstream(client, contracts)


@pytest.fixture
def web_order(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    media = documents["erp.sales-orders"]["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]
    return copy.deepcopy(media["examples"]["webCardOrder"]["value"])


def assert_problem(response: httpx.Response, status: int, correlation_id: str | None = None) -> dict[str, Any]:
    """The response is a problem document with that status (and correlation id)."""
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["title"]
    assert problem.get("correlationId") == correlation_id
    return problem


def test_order_lifecycle(upstream: Upstream, web_order: dict[str, Any]) -> None:
    created = upstream.call("POST", "/orders", json=web_order, headers={"X-Correlation-ID": "corr-1"})
    assert created.status_code == 201
    order = created.json()
    assert created.headers["location"] == f"/orders/{order['id']}"
    assert order["status"] == "created"
    assert order["total"] == {"amount": "88.98", "currency": "EUR"}
    assert {k: v for k, v in order.items() if k not in ("id", "status", "createdAt", "total")} == web_order
    assert "x-correlation-id" not in created.headers

    fetched = upstream.call("GET", f"/orders/{order['id']}")
    assert fetched.status_code == 200 and fetched.json() == order

    cancelled = upstream.call("POST", f"/orders/{order['id']}/cancel", json={"reason": "customer-request"})
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancellation"]["reason"] == "customer-request"

    again = upstream.call("POST", f"/orders/{order['id']}/cancel", json={"reason": "other"},
                          headers={"X-Correlation-ID": "corr-2"})
    problem = assert_problem(again, 409, "corr-2")
    assert problem["type"].endswith("/order-not-cancellable")
    assert upstream.call("GET", f"/orders/{order['id']}").json()["cancellation"]["reason"] == "customer-request"


def test_order_list_pages_and_filters(upstream: Upstream, web_order: dict[str, Any]) -> None:
    ids = []
    for n, channel in enumerate(["web", "partner", "web", "marketplace", "pos"]):
        body = {**web_order, "channel": channel, "externalReference": f"REF-{n}"}
        ids.append(upstream.call("POST", "/orders", json=body).json()["id"])

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = upstream.call("GET", "/orders", params=params).json()
        seen += [item["id"] for item in page["items"]]
        pages, cursor = pages + 1, page["nextCursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == ids[::-1]  # newest first, each order exactly once

    web = upstream.call("GET", "/orders", params={"channel": "web"}).json()
    assert [item["externalReference"] for item in web["items"]] == ["REF-2", "REF-0"]
    upstream.call("POST", f"/orders/{ids[1]}/cancel", json={"reason": "fraud-suspected", "comment": "chargeback"})
    cancelled = upstream.call("GET", "/orders", params={"status": "cancelled"}).json()
    assert [item["id"] for item in cancelled["items"]] == [ids[1]]
    window = {"createdFrom": "2000-01-01T00:00:00Z", "createdTo": "2000-01-02T00:00:00+02:00"}
    assert upstream.call("GET", "/orders", params=window).json() == {"items": [], "nextCursor": None}


@pytest.mark.parametrize(("mutate", "pointer"), [
    (lambda o: o.update(giftWrap=True), ""),
    (lambda o: o["lines"][0].update(quantity=0), "/lines/0/quantity"),
    (lambda o: o["lines"][1]["components"][0].update(sku="bad sku"), "/lines/1/components/0/sku"),
    (lambda o: o.update(payment={"method": "card", "termsDays": 30}), "/payment"),
    (lambda o: o.update(payment={"method": "cash"}), "/payment/method"),
    (lambda o: o["customer"].update(email="not-an-email"), "/customer/email"),
    (lambda o: o.update(lines=[]), "/lines"),
])
def test_order_body_violations_are_400(upstream: Upstream, web_order: dict[str, Any], mutate: Any,
                                       pointer: str) -> None:
    mutate(web_order)
    response = upstream.call("POST", "/orders", json=web_order, headers={"X-Correlation-ID": "corr-3"})
    problem = assert_problem(response, 400, "corr-3")
    assert problem["errors"][0]["pointer"] == pointer


def test_lines_in_two_currencies_break_a_business_rule_the_contract_documents(upstream: Upstream,
                                                                              web_order: dict[str, Any]) -> None:
    web_order["lines"][1]["unitPrice"] = {"amount": "49.00", "currency": "USD"}
    response = upstream.call("POST", "/orders", json=web_order, headers={"X-Correlation-ID": "corr-4"})
    problem = assert_problem(response, 422, "corr-4")
    assert problem["type"].endswith("/business-rule") and problem["errors"][0]["pointer"] == "/lines"


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/orders/not-a-uuid", 400),
    ("GET", "/orders/7b7e4a43-33f1-4b43-9d0c-1f8a7e0a5c11", 404),
    ("POST", "/orders/7b7e4a43-33f1-4b43-9d0c-1f8a7e0a5c11/cancel", 404),
    ("GET", "/orders?limit=0", 400),
    ("GET", "/orders?limit=101", 400),
    ("GET", "/orders?status=lost", 400),
    ("GET", "/orders?cursor=not-ours", 400),
    ("GET", "/orders?createdFrom=2025-01-01T00:00:00", 400),
    ("GET", "/positions?location=B-1", 400),
    ("GET", "/positions/no%20such", 400),
    ("GET", "/positions/NOT-STOCKED", 404),
    ("GET", "/reservations/7b7e4a43-33f1-4b43-9d0c-1f8a7e0a5c11", 404),
    ("DELETE", "/reservations/7b7e4a43-33f1-4b43-9d0c-1f8a7e0a5c11", 404),
])
def test_parameter_errors(upstream: Upstream, method: str, path: str, status: int) -> None:
    assert_problem(upstream.call(method, path, json={"reason": "other"} if method == "POST" else None), status)


def test_positions(upstream: Upstream) -> None:
    positions, cursor = [], None
    while True:
        page = upstream.call("GET", "/positions", params={"limit": 7} | ({"cursor": cursor} if cursor else {})).json()
        positions += page["items"]
        if (cursor := page["nextCursor"]) is None:
            break
    assert len(positions) == SEEDED_POSITIONS >= 20
    assert len({p["sku"] for p in positions}) == 20
    assert all(p["available"] == p["onHand"] - p["reserved"] for p in positions)

    by_location = upstream.call("GET", "/positions", params={"location": "BE-01-03"}).json()["items"]
    assert {p["sku"] for p in by_location} == {"TSHIRT-BLK-M", "TSHIRT-BLK-L"}
    by_sku = upstream.call("GET", "/positions", params={"sku": "TSHIRT-BLK-M"}).json()["items"]
    stock = upstream.call("GET", "/positions/TSHIRT-BLK-M").json()
    assert stock["positions"] == by_sku
    assert stock["totalAvailable"] == sum(p["available"] for p in by_sku) == 175


def test_reservation_lifecycle(upstream: Upstream) -> None:
    def available() -> int:
        return upstream.call("GET", "/positions", params={"sku": "GIFTBOX-DELUXE"}).json()["items"][0]["available"]

    hold = {"sku": "GIFTBOX-DELUXE", "location": "BE-02-06", "quantity": 30, "orderReference": "WEB-100234"}
    first = upstream.call("POST", "/reservations", json=hold)
    assert first.status_code == 201 and first.json()["state"] == "held"
    reservation_id = first.json()["id"]
    assert first.headers["location"] == f"/reservations/{reservation_id}"
    assert available() == 3

    short = upstream.call("POST", "/reservations", json={**hold, "quantity": 4}, headers={"X-Correlation-ID": "c-9"})
    assert assert_problem(short, 409, "c-9")["type"].endswith("/insufficient-stock")
    unknown_location = upstream.call("POST", "/reservations", json={**hold, "location": "ZZ-99-99"})
    assert_problem(unknown_location, 409)
    assert upstream.call("POST", "/reservations", json={**hold, "quantity": 3}).status_code == 201
    assert available() == 0

    assert upstream.call("GET", f"/reservations/{reservation_id}").json() == first.json()
    released = upstream.call("DELETE", f"/reservations/{reservation_id}")
    assert released.status_code == 204 and released.content == b""
    assert available() == 30
    after = upstream.call("GET", f"/reservations/{reservation_id}").json()
    assert after["state"] == "released" and "releasedAt" in after
    assert upstream.call("DELETE", f"/reservations/{reservation_id}").status_code == 204
    assert available() == 30

    invalid = upstream.call("POST", "/reservations", json={**hold, "quantity": 10001})
    assert assert_problem(invalid, 400)["errors"][0]["pointer"] == "/quantity"


def test_contract_request_examples_are_accepted(upstream: Upstream, documents: dict[str, dict[str, Any]]) -> None:
    order_id = None
    for name in ("erp.sales-orders", "wms.inventory"):
        for path, item in documents[name]["paths"].items():
            for method, operation in item.items():
                if method == "parameters" or "requestBody" not in operation:
                    continue
                media = operation["requestBody"]["content"]["application/json"]
                examples = [e["value"] for e in media.get("examples", {}).values()] or [media["example"]]
                for example in examples:
                    response = upstream.call(method.upper(), path.replace("{orderId}", str(order_id)), json=example)
                    assert 200 <= response.status_code < 300, (operation["operationId"], response.text)
                    order_id = order_id or response.json()["id"]


def test_debug_last_request_and_delay(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_problem(client.get("/_debug/last-request"), 404)
    client.get("/orders", params={"limit": 5, "channel": "web"}, headers={"X-Correlation-ID": "abc", "X-Extra": "1"})
    assert client.get("/healthz").json() == {"status": "ok"}
    last = client.get("/_debug/last-request").json()
    assert (last["method"], last["path"], last["queryString"]) == ("GET", "/orders", "limit=5&channel=web")
    assert last["headers"]["x-correlation-id"] == "abc" and last["headers"]["x-extra"] == "1"

    client.get("/no/such/route")
    assert client.get("/_debug/last-request").json()["path"] == "/no/such/route"

    started = time.monotonic()
    assert client.get("/positions", headers={"X-Upstream-Delay-Ms": "150"}).status_code == 200
    assert time.monotonic() - started >= 0.15
    monkeypatch.setattr(erp, "MAX_DELAY_MS", 20)
    started = time.monotonic()
    client.get("/positions", headers={"X-Upstream-Delay-Ms": "30000"})
    assert time.monotonic() - started < 5


def test_echoes_nothing_unasked(client: TestClient) -> None:
    secret = {"Authorization": "Bearer s3cr3t-token", "Cookie": "session=s3cr3t-cookie", "X-Api-Key": "s3cr3t-key"}
    for response in (client.get("/positions/TSHIRT-BLK-M", headers=secret),
                     client.get("/orders/nope", headers=secret),
                     client.get("/no/such/route", headers=secret),
                     client.post("/orders", content=b"{", headers=secret)):
        assert "s3cr3t" not in response.text
        assert not any("s3cr3t" in value for value in response.headers.values())
        assert {"authorization", "cookie", "x-api-key", "set-cookie"}.isdisjoint(response.headers)
    for response in (client.get("/orders", params={"status": "<script>"}),
                     client.post("/orders", json={"channel": "<script>"})):
        assert response.status_code == 400 and "<script>" not in response.text
