"""Versions side by side, deprecation headers and retirement, with a gateway that never restarts."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator

import httpx
import pytest
import yaml

from tests.e2e.conftest import CONSUMER, GatewayProcess, running_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lifecycle_gateway(tmp_path_factory: pytest.TempPathFactory, sample_erp: str,
                      catalog: list[dict]) -> Iterator[GatewayProcess]:
    with running_gateway(tmp_path_factory.mktemp("lifecycle"), sample_erp, catalog, min_sunset_days=0) as running:
        yield running


def test_v2_beside_v1_then_v1_deprecated_then_retired(lifecycle_gateway: GatewayProcess, catalog: list[dict]) -> None:
    gw = lifecycle_gateway
    orders = next(e for e in catalog if e["name"] == "erp.sales-orders")["loaded"]
    v2 = copy.deepcopy(orders)
    v2["info"]["version"] = "2.0.0"
    del v2["paths"]["/orders/{orderId}/cancel"]  # the breaking change that makes it a major
    added = gw.admin.post("/registry/contracts/erp.sales-orders/versions", content=yaml.safe_dump(v2),
                          headers={"content-type": "application/yaml"})
    assert added.status_code == 201 and added.json()["version"]["required_bump"] == "major"
    assert gw.admin.post("/registry/contracts/erp.sales-orders/versions/2.0.0/publish").status_code == 200
    gw.admin.post(f"/registry/consumers/{CONSUMER}/subscriptions", json={"contract": "erp.sales-orders", "major": 2})

    assert gw.client.get("/erp.sales-orders/v2/orders").status_code == 200
    assert gw.client.get("/erp.sales-orders/v1/orders").status_code == 200
    assert gw.client.post(f"/erp.sales-orders/v2/orders/{'0' * 8}-0000-4000-8000-{'0' * 12}/cancel",
                          json={"reason": "other"}).status_code == 404  # v2 has no cancel

    sunset = dt.date.today() + dt.timedelta(days=10)
    deprecated = gw.admin.post("/registry/contracts/erp.sales-orders/versions/1.0.0/deprecate",
                               json={"sunset": sunset.isoformat(), "successor": "2.0.0"})
    assert deprecated.status_code == 200, deprecated.text
    response = gw.client.get("/erp.sales-orders/v1/orders")
    assert response.status_code == 200
    assert response.headers["deprecation"].startswith("@")
    assert response.headers["sunset"] == sunset.strftime("%a, %d %b %Y 00:00:00 GMT")
    assert response.headers["link"] == '</erp.sales-orders/v2>; rel="successor-version"'
    assert "deprecation" not in gw.client.get("/erp.sales-orders/v2/orders").headers

    early = gw.admin.post("/registry/contracts/erp.sales-orders/versions/1.0.0/retire", json={})
    assert early.status_code == 409 and "sunsets on" in early.json()["detail"]
    no_reason = gw.admin.post("/registry/contracts/erp.sales-orders/versions/1.0.0/retire", json={"force": True})
    assert no_reason.status_code == 400
    forced = gw.admin.post("/registry/contracts/erp.sales-orders/versions/1.0.0/retire",
                           json={"force": True, "reason": "ERP v1 endpoint decommissioned early"})
    assert forced.status_code == 200 and forced.json()["state"] == "retired"
    gone = gw.client.get("/erp.sales-orders/v1/orders")
    assert gone.status_code == 410 and gone.json()["type"].endswith("/version-gone")
    assert "2.0.0" in gone.json()["detail"]
    assert gw.client.get("/erp.sales-orders/v2/orders").status_code == 200


def test_deprecation_rules(lifecycle_gateway: GatewayProcess) -> None:
    gw = lifecycle_gateway
    url = "/registry/contracts/wms.inventory/versions/1.0.0"
    past = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    assert gw.admin.post(url + "/deprecate", json={"sunset": past}).status_code == 400
    assert gw.admin.post(url + "/deprecate", json={"sunset": "2999-01-01", "successor": "1.0.0"}).status_code == 400
    assert gw.admin.post(url + "/retire", json={}).status_code == 409  # not deprecated
    integrator = httpx.Client(base_url=gw.url, headers={
        "Authorization": f"Bearer {gw.registry_token('ian', ['integrator'])}"})
    assert integrator.post(url + "/deprecate", json={"sunset": "2999-01-01"}).status_code == 403
