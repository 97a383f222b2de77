"""The routing table: prefixes, templates, precedence, newest version per major."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import pytest

from gateway.routing import RoutingTable
from registry.problems import Problem
from registry.model import Contract, Version

NOW = datetime.now(UTC)


def published(name: str, version: str, paths: dict, state: str = "published") -> tuple[Contract, Version, str]:
    contract = Contract(name=name, kind="openapi", owner="o", description="", upstream="erp",
                        created_at=NOW, created_by="t")
    document = {"openapi": "3.1.0", "info": {"title": name, "version": version}, "paths": paths}
    row = Version(contract=name, version=version, major=int(version.split(".")[0]), sha256="", state=state,
                  created_at=NOW, created_by="t")
    return contract, row, json.dumps(document)


def op(operation_id: str) -> dict:
    return {"operationId": operation_id, "responses": {"200": {"description": "ok"}}}


def table(*rows: tuple[Contract, Version, str], build_chain=lambda *args: []) -> RoutingTable:
    return RoutingTable.compile(list(rows), build_chain)


def test_literal_paths_win_over_templates_and_params_are_decoded() -> None:
    routes = table(published("erp.orders", "1.0.0", {
        "/orders/{id}": {"get": op("getOrder")},
        "/orders/search": {"get": op("searchOrders")},
        "/orders/{id}/lines/{line}": {"get": op("getLine")},
    }))
    assert routes.match("/erp.orders/v1/orders/search", "GET")[0].operation_id == "searchOrders"
    route, params, rest = routes.match("/erp.orders/v1/orders/A%2FB%20C", "GET")
    assert route.operation_id == "getOrder" and params == {"id": "A/B C"} and rest == "/orders/A%2FB%20C"
    assert routes.match("/erp.orders/v1/orders/7/lines/2", "GET")[1] == {"id": "7", "line": "2"}


def test_newest_published_version_of_each_major_serves() -> None:
    routes = table(
        published("erp.orders", "1.0.0", {"/a": {"get": op("old")}}),
        published("erp.orders", "1.2.0", {"/a": {"get": op("new")}}),
        published("erp.orders", "1.10.0", {"/a": {"get": op("newest")}}),
        published("erp.orders", "1.11.0", {"/a": {"get": op("draft")}}, state="draft"),
        published("erp.orders", "2.0.0", {"/b": {"get": op("v2")}}),
    )
    assert routes.match("/erp.orders/v1/a", "GET")[0].operation_id == "newest"
    assert routes.match("/erp.orders/v2/b", "GET")[0].operation_id == "v2"
    with pytest.raises(Problem) as gone:
        routes.match("/erp.orders/v2/a", "GET")
    assert gone.value.status == 404


@pytest.mark.parametrize("path", ["/", "/erp.orders", "/erp.orders/1/a", "/erp.orders/v01/a", "/ERP/v1/a",
                                  "/erp.orders/v1/../a", "/erp.orders/v1/a/"])
def test_unknown_paths_are_404(path: str) -> None:
    with pytest.raises(Problem) as missing:
        table(published("erp.orders", "1.0.0", {"/a": {"get": op("a")}})).match(path, "GET")
    assert missing.value.status == 404


def test_wrong_method_is_405_with_allow() -> None:
    routes = table(published("erp.orders", "1.0.0", {"/a": {"get": op("a"), "post": op("b")}}))
    with pytest.raises(Problem) as wrong:
        routes.match("/erp.orders/v1/a", "DELETE")
    assert wrong.value.status == 405 and wrong.value.headers["Allow"] == "GET, POST"


def test_operations_without_an_operation_id_keep_separate_limit_and_idempotency_scopes(tmp_path) -> None:
    """The route's fallback id ("post /orders") reaches the policies, so two such operations share nothing."""
    from gateway.chain import ChainBuilder
    from gateway.config import GatewayConfig
    from gateway.services import Services
    from policies.idempotency import IdempotencyPolicy
    from policies.rate_limit import RateLimitPolicy

    config = msgspec.convert({"store": f"sqlite:///{tmp_path}/r.db", "rate_limit": {"per_operation": True},
                              "tokens": {"signing_key_file": str(tmp_path / "k.pem")}}, GatewayConfig)
    anonymous = {"responses": {"200": {"description": "ok"}}}  # no operationId
    routes = table(published("erp.orders", "1.0.0", {"/orders": {"post": anonymous}, "/returns": {"post": anonymous}}),
                   build_chain=ChainBuilder(Services(config)))
    scopes = {(type(p).__name__, p.scope) for template in ("/orders", "/returns")
              for p in routes.match(f"/erp.orders/v1{template}", "POST")[0].chain
              if isinstance(p, (RateLimitPolicy, IdempotencyPolicy))}
    assert scopes == {("RateLimitPolicy", ":erp.orders:v1:post /orders"),
                      ("RateLimitPolicy", ":erp.orders:v1:post /returns"),
                      ("IdempotencyPolicy", "erp.orders:v1:post /orders"),
                      ("IdempotencyPolicy", "erp.orders:v1:post /returns")}
