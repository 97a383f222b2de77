"""Idempotency, metrics and usage records through the real gateway process."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.conftest import CONSUMER, GatewayProcess
from tests.e2e.test_governed_call import ORDER, order

pytestmark = pytest.mark.e2e


def test_idempotency_key_replays_the_first_response(gateway: GatewayProcess) -> None:
    key = {"Idempotency-Key": f"checkout-{uuid.uuid4()}"}
    first = gateway.client.post("/erp.sales-orders/v1/orders", json=ORDER, headers=key)
    assert first.status_code == 201, first.text
    upstream_saw = gateway.last_upstream_request()
    again = gateway.client.post("/erp.sales-orders/v1/orders", json=ORDER, headers=key)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert gateway.last_upstream_request() == upstream_saw  # the ERP created one order, not two
    other = gateway.client.post("/erp.sales-orders/v1/orders", json=order(externalReference="WEB-2"), headers=key)
    assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")
    assert gateway.client.post("/erp.sales-orders/v1/orders", json=ORDER,
                               headers={"Idempotency-Key": ""}).status_code == 400


def test_metrics_count_requests_by_outcome(gateway: GatewayProcess) -> None:
    gateway.client.get("/wms.inventory/v1/positions")
    gateway.client.get("/no-such-api/v1/x")
    text = gateway.client.get("/metrics").text
    assert 'govgate_requests_total{consumer="channel-test",contract="wms.inventory",operation="listPositions"' in text
    assert 'govgate_unrouted_requests_total{status="404"}' in text
    assert "govgate_request_duration_seconds_bucket" in text
    assert 'govgate_upstream_in_flight{upstream="erp"}' in text


def test_usage_records_show_who_called_what(gateway: GatewayProcess) -> None:
    gateway.client.get("/wms.inventory/v1/positions", params={"limit": 1})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        usage = gateway.admin.get("/registry/contracts/wms.inventory/usage").json()
        mine = [u for u in usage if u["consumer"] == CONSUMER and u["operation"] == "listPositions"]
        if mine:
            assert mine[0]["count"] >= 1 and mine[0]["major"] == 1
            return
        time.sleep(0.2)
    raise AssertionError(f"no usage record appeared: {usage}")
