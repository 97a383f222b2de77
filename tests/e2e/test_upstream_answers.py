"""Response validation against a real upstream whose answers break the contract."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import CONSUMER, GatewayProcess, publish, running_gateway

pytestmark = pytest.mark.e2e


def mismatched(catalog: list[dict]) -> dict:
    """wms.inventory as a contract that says positions carry a `warehouse` the ERP never sends."""
    entry = copy.deepcopy(next(e for e in catalog if e["name"] == "wms.inventory"))
    entry["name"] = "wms.strict-inventory"
    schemas = entry["loaded"]["components"]["schemas"]
    position = next(name for name in schemas if name.lower() == "position")
    schemas[position].setdefault("required", []).append("warehouse")
    schemas[position]["properties"]["warehouse"] = {"type": "string", "maxLength": 20}
    return entry


@pytest.fixture(scope="module", params=["enforce", "report"])
def strict(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sample_erp: str,
           catalog: list[dict]) -> Iterator[tuple[GatewayProcess, str]]:
    mode = request.param
    with running_gateway(tmp_path_factory.mktemp(f"strict-{mode}"), sample_erp, catalog,
                         response_validation={"mode": mode}) as gw:
        publish(gw.admin, mismatched(catalog))
        gw.admin.post(f"/registry/consumers/{CONSUMER}/subscriptions", json={"contract": "wms.strict-inventory",
                                                                             "major": 1})
        yield gw, mode


def test_an_upstream_answer_that_breaks_the_contract(strict: tuple[GatewayProcess, str]) -> None:
    gw, mode = strict
    response = gw.client.get("/wms.strict-inventory/v1/positions", params={"limit": 2})
    metrics = gw.client.get("/metrics").text
    if mode == "enforce":
        assert response.status_code == 502
        problem = response.json()
        assert problem["type"].endswith("/upstream-response-invalid")
        assert any("warehouse" in e["message"] for e in problem["errors"])
        assert 'govgate_response_validation_failures_total{contract="wms.strict-inventory"' in metrics
    else:
        assert response.status_code == 200 and response.json()["items"]  # passed through, counted
        assert 'mode="report"' in metrics.split("govgate_response_validation_failures_total{", 1)[1].split("\n")[0]
    assert gw.client.get("/wms.inventory/v1/positions", params={"limit": 2}).status_code == 200
