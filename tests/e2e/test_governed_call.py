"""A governed call end to end: client → gateway process → sample ERP process, over HTTP."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import READ_TIMEOUT, GatewayProcess, running_gateway

pytestmark = pytest.mark.e2e

ORDER: dict[str, Any] = {
    "channel": "web",
    "externalReference": "WEB-1001",
    "customer": {"id": "C-42", "email": "ada@example.com", "name": "Ada Lovelace"},
    "lines": [{"sku": "SKU-1001", "quantity": 2, "unitPrice": {"amount": "19.99", "currency": "EUR"}}],
    "shippingAddress": {"name": "Ada Lovelace", "line1": "1 Analytical St", "city": "London",
                        "postalCode": "N1 9GU", "country": "GB"},
    "payment": {"method": "invoice", "termsDays": 30},
}


def order(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(ORDER)
    body.update(changes)
    return body


def test_valid_order_is_forwarded_with_the_correlation_id(gateway: GatewayProcess) -> None:
    response = gateway.client.post("/erp.sales-orders/v1/orders", json=ORDER,
                                   headers={"X-Correlation-ID": "checkout-7f3a", "traceparent":
                                            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "created" and created["externalReference"] == "WEB-1001"
    assert response.headers["x-correlation-id"] == "checkout-7f3a"
    assert response.headers["location"] == f"/erp.sales-orders/v1/orders/{created['id']}"
    seen = gateway.last_upstream_request()
    assert seen is not None and seen["method"] == "POST" and seen["path"] == "/orders"
    assert seen["headers"]["x-correlation-id"] == "checkout-7f3a"
    # the trace continues with a new span of the gateway's
    trace = seen["headers"]["traceparent"].split("-")
    assert trace[1] == "4bf92f3577b34da6a3ce929d0e0e4736" and trace[2] != "00f067aa0ba902b7"
    assert seen["headers"]["forwarded"].startswith('for="127.0.0.1";proto=http')

    fetched = gateway.client.get(f"/erp.sales-orders/v1/orders/{created['id']}")
    assert fetched.status_code == 200 and fetched.json()["id"] == created["id"]


def test_correlation_id_is_generated_or_replaced_when_not_sane(gateway: GatewayProcess) -> None:
    for sent in (None, "x" * 129, "has spaces in it", "caf\u00e9".encode(), "<script>"):
        headers = {} if sent is None else {"X-Correlation-ID": sent}
        response = gateway.client.get("/wms.inventory/v1/positions", params={"limit": 2}, headers=headers)
        assert response.status_code == 200, response.text
        assigned = response.headers["x-correlation-id"]
        assert str(uuid.UUID(assigned)) == assigned
        assert gateway.last_upstream_request()["headers"]["x-correlation-id"] == assigned
    kept = "a" * 128
    response = gateway.client.get("/wms.inventory/v1/positions", headers={"X-Correlation-ID": kept})
    assert response.headers["x-correlation-id"] == kept


def test_query_and_path_parameters_reach_the_upstream(gateway: GatewayProcess) -> None:
    listed = gateway.client.get("/wms.inventory/v1/positions", params={"limit": 3})
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert 0 < len(items) <= 3
    assert gateway.last_upstream_request()["queryString"] == "limit=3"
    sku = items[0]["sku"]
    one = gateway.client.get(f"/wms.inventory/v1/positions/{sku}")
    assert one.status_code == 200 and one.json()["sku"] == sku


def test_hop_by_hop_headers_are_not_forwarded(gateway: GatewayProcess) -> None:
    answer = gateway.client.get("/wms.inventory/v1/positions", headers={
        "Connection": "keep-alive, X-Internal-Hop", "X-Internal-Hop": "secret", "Proxy-Authorization": "Basic eA==",
        "X-Channel": "pos-17"})
    headers = gateway.last_upstream_request()["headers"]
    assert "x-internal-hop" not in headers and "proxy-authorization" not in headers
    assert headers["x-channel"] == "pos-17"
    # the answer has one Date (the gateway's) and names no server software, the upstream's or its own
    assert len(answer.headers.get_list("date")) == 1 and "server" not in answer.headers


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert problem["correlationId"] == response.headers["x-correlation-id"]
    return problem


INVALID_BODIES = [
    pytest.param(order(lines=[{**ORDER["lines"][0], "quantity": "two"}]), "/lines/0/quantity", id="wrong-type"),
    pytest.param({k: v for k, v in ORDER.items() if k != "customer"}, "/customer", id="missing-required"),
    pytest.param(order(channel="fax"), "/channel", id="enum"),
    pytest.param(order(customer={**ORDER["customer"], "email": "not-an-email"}), "/customer/email", id="format"),
    pytest.param(order(requestedDeliveryDate="31/12/2026"), "/requestedDeliveryDate", id="date-format"),
    pytest.param(order(unexpected=True), "", id="additional-property"),
]


@pytest.mark.parametrize(("body", "pointer"), INVALID_BODIES)
def test_invalid_body_is_rejected_before_the_upstream(gateway: GatewayProcess, body: dict, pointer: str) -> None:
    before = gateway.last_upstream_request()
    response = gateway.client.post("/erp.sales-orders/v1/orders", json=body)
    problem = _problem(response, 400)
    assert {"in": "body", "pointer": pointer} in [{"in": e["in"], "pointer": e["pointer"]} for e in problem["errors"]]
    assert gateway.last_upstream_request() == before


def test_every_error_is_listed(gateway: GatewayProcess) -> None:
    body = order(channel="fax", customer={"id": "C-1", "email": "nope", "name": "X"},
                 lines=[{"sku": "bad sku", "quantity": 0, "unitPrice": {"amount": "1", "currency": "eur"}}])
    problem = _problem(gateway.client.post("/erp.sales-orders/v1/orders", json=body), 400)
    pointers = {e["pointer"] for e in problem["errors"]}
    assert {"/channel", "/customer/email", "/lines/0/sku", "/lines/0/quantity",
            "/lines/0/unitPrice/currency"} <= pointers


def test_invalid_parameters_are_rejected(gateway: GatewayProcess) -> None:
    problem = _problem(gateway.client.get("/erp.sales-orders/v1/orders", params={"limit": "500", "status": "lost"}), 400)
    assert {("query", "/limit"), ("query", "/status")} <= {(e["in"], e["pointer"]) for e in problem["errors"]}
    problem = _problem(gateway.client.get("/erp.sales-orders/v1/orders/not-a-uuid"), 400)
    assert ("path", "/orderId") in {(e["in"], e["pointer"]) for e in problem["errors"]}


def test_routing_errors(gateway: GatewayProcess) -> None:
    _problem(gateway.client.get("/erp.sales-orders/v1/nowhere"), 404)
    _problem(gateway.client.get("/erp.sales-orders/v9/orders"), 404)
    _problem(gateway.client.get("/no-such-contract/v1/orders"), 404)
    _problem(gateway.client.get("/"), 404)
    response = gateway.client.delete("/erp.sales-orders/v1/orders")
    _problem(response, 405)
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}


def test_malformed_json_wrong_content_type_and_oversized_bodies(gateway: GatewayProcess) -> None:
    before = gateway.last_upstream_request()
    headers = {"content-type": "application/json"}
    problem = _problem(gateway.client.post("/erp.sales-orders/v1/orders", content=b'{"channel": "web",', headers=headers), 400)
    assert problem["type"].endswith("/malformed-json")
    _problem(gateway.client.post("/erp.sales-orders/v1/orders", content=b"channel=web",
                                 headers={"content-type": "application/x-www-form-urlencoded"}), 415)
    _problem(gateway.client.post("/erp.sales-orders/v1/orders", content=json.dumps(ORDER)), 415)
    oversized = order(notes="x" * (70 * 1024))
    _problem(gateway.client.post("/erp.sales-orders/v1/orders", json=oversized), 413)

    def chunks():  # no content-length: the limit holds for a streamed body too
        for _ in range(80):
            yield b" " * 1024

    _problem(gateway.client.post("/erp.sales-orders/v1/orders", content=chunks(), headers=headers), 413)
    _problem(gateway.client.post("/erp.sales-orders/v1/orders", headers=headers), 400)
    assert gateway.last_upstream_request() == before


def test_upstream_down_is_502(gateway: GatewayProcess) -> None:
    problem = _problem(gateway.client.get(f"/returns.authorizations/v1/rmas/{uuid.uuid4()}"), 502)
    assert "returns" in problem["detail"]


def test_upstream_slower_than_the_timeout_is_504(gateway: GatewayProcess) -> None:
    delay_ms = int(READ_TIMEOUT * 1000) + 1500
    response = gateway.client.get("/wms.inventory/v1/positions", headers={"X-Upstream-Delay-Ms": str(delay_ms)})
    _problem(response, 504)
    assert gateway.client.get("/wms.inventory/v1/positions").status_code == 200


def test_upstream_answers_pass_through_unchanged(gateway: GatewayProcess) -> None:
    response = gateway.client.get(f"/erp.sales-orders/v1/orders/{uuid.uuid4()}", headers={"X-Correlation-ID": "c-404"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["correlationId"] == "c-404"


def test_the_governed_call_also_runs_under_granian(tmp_path_factory: pytest.TempPathFactory, sample_erp: str,
                                                   catalog: list[dict]) -> None:
    """The other server `server:` offers (the default is uvicorn): the same call, answer and headers."""
    with running_gateway(tmp_path_factory.mktemp("granian"), sample_erp, catalog, server="granian") as granian:
        response = granian.client.post("/erp.sales-orders/v1/orders", json=ORDER, headers={"X-Correlation-ID": "g-1"})
        assert response.status_code == 201, response.text
        assert response.headers["x-correlation-id"] == "g-1" and "ratelimit" in response.headers
        assert response.headers["location"].startswith("/erp.sales-orders/v1/orders/")
        invalid = granian.client.post("/erp.sales-orders/v1/orders", json=order(lines=[]))
        assert invalid.status_code == 400 and invalid.headers["content-type"] == "application/problem+json"
