"""The project's own contract tests: schemathesis against the registry API (from its own OpenAPI
document) and against the gateway for every bundled contract, with the sample ERP behind it.

No 5xx, and every response whose status is documented matches its documented schema.
GOVGATE_CONTRACT_EXAMPLES sets the budget per operation (CI keeps it small).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.e2e.conftest import GatewayProcess, running_gateway

pytestmark = pytest.mark.e2e
EXAMPLES = int(os.environ.get("GOVGATE_CONTRACT_EXAMPLES", "15"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sample_erp: str, catalog: list[dict]) -> Iterator[GatewayProcess]:
    with running_gateway(tmp_path_factory.mktemp("contract-tests"), sample_erp, catalog) as running:
        yield running


def exercise(document: dict[str, Any], base_url: str, headers: dict[str, str], skip: set[str] = frozenset()) -> dict:
    """Every operation, EXAMPLES generated requests each; the failures found, by operation."""
    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    failures: dict[str, list[str]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        name = f"{operation.method.upper()} {operation.path}"
        if name in skip:
            continue

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(operation.as_strategy())
        def run(case: Any) -> None:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except (Exception, BaseExceptionGroup) as exc:
                failures.setdefault(name, []).append(f"{response.status_code}: {str(exc)[:600]}\n"
                                                     f"{case.as_curl_command(headers=headers, base_url=base_url)}")

        run()
    return failures


def test_the_registry_api_keeps_its_own_contract(server: GatewayProcess) -> None:
    document = server.admin.get("/registry/openapi.json").json()
    headers = {"Authorization": server.admin.headers["authorization"]}
    # a write endpoint fed random data would mostly be refused; these are exercised read-only and for 4xx
    failures = exercise(document, server.url, headers)
    assert not failures, "\n\n".join(f"{op}:\n" + "\n".join(f[:3]) for op, f in failures.items())


@pytest.mark.parametrize("contract", ["erp.sales-orders", "wms.inventory"])
def test_the_gateway_keeps_every_bundled_contract(server: GatewayProcess, catalog: list[dict], contract: str) -> None:
    document = copy.deepcopy(next(e for e in catalog if e["name"] == contract)["loaded"])
    document["servers"] = [{"url": f"{server.url}/{contract}/v1"}]
    headers = {"Authorization": server.client.headers["authorization"]}
    failures = exercise(document, f"{server.url}/{contract}/v1", headers)
    assert not failures, "\n\n".join(f"{op}:\n" + "\n".join(f[:3]) for op, f in failures.items())


def test_stateful_sequences_through_the_gateway(server: GatewayProcess, catalog: list[dict]) -> None:
    """Chains of calls with real ids (create an order, then get and cancel it; reserve, then release):
    schemathesis links producers to consumers from the documents and the Location headers."""
    from hypothesis import settings as hypothesis_settings

    base = f"{server.url}/erp.sales-orders/v1"
    document = copy.deepcopy(next(e for e in catalog if e["name"] == "erp.sales-orders")["loaded"])
    document["servers"] = [{"url": base}]
    headers = {"Authorization": server.client.headers["authorization"]}
    machine = schemathesis.openapi.from_dict(document).as_state_machine()
    calls: list[str] = []

    class Governed(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            calls.append(f"{case.method} {case.path}")
            return {"base_url": base, "headers": headers}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, headers=headers)

    Governed.run(settings=hypothesis_settings(max_examples=max(5, EXAMPLES // 3), stateful_step_count=6,
                                              deadline=None, database=None, derandomize=True,
                                              suppress_health_check=list(HealthCheck)))
    # the chains reached operations that need an id from an earlier answer
    assert any(call.endswith("/{orderId}") or call.endswith("/cancel") for call in calls), sorted(set(calls))
