"""The chain table: order, and policies that cannot apply to a route are not in its chain at all."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.chain import POLICIES, ChainBuilder
from gateway.config import GatewayConfig
from gateway.routing import Operation
from gateway.services import Services
from registry.model import Contract, Version

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DOCUMENT: dict[str, Any] = {"openapi": "3.1.0", "info": {"title": "t", "version": "1.0.0"}, "paths": {}}
ALL = ["ObservabilityPolicy", "AuthenticationPolicy", "AuthorizationPolicy", "RateLimitPolicy",
       "RequestValidationPolicy", "IdempotencyPolicy", "ResponseValidationPolicy", "CircuitBreakerPolicy",
       "BackendProtectionPolicy"]


def chain(tmp_path: Path, method: str = "post", state: str = "published", upstream: str | None = "erp",
          **config: Any) -> list[str]:
    """The policy class names of one operation's chain under `config`."""
    settings = {"tokens": {"signing_key_file": str(tmp_path / "k.pem")},
                "upstreams": {"erp": {"url": "http://127.0.0.1:9"}}, **config}
    services = Services(msgspec.convert(settings, GatewayConfig))
    contract = Contract(name="erp.orders", kind="openapi", owner="o", description="", upstream=upstream,
                        created_at=NOW, created_by="t")
    version = Version(contract="erp.orders", version="1.0.0", major=1, sha256="", state=state,
                      created_at=NOW, created_by="t")
    operation = {"operationId": "createOrder", "responses": {"201": {"description": "ok"}}}
    spec = Operation(contract, version, json.loads(json.dumps(DOCUMENT)), "/orders", {method: operation}, method,
                     operation, "createOrder")
    return [type(policy).__name__ for policy in ChainBuilder(services)(spec)]


def test_the_full_chain_runs_in_the_table_order(tmp_path: Path) -> None:
    assert chain(tmp_path) == ALL
    assert [name for name, _ in POLICIES] == ["observability", "authentication", "authorization", "rate_limit",
                                              "deprecation", "request_validation", "idempotency",
                                              "response_validation", "circuit_breaker", "backend_protection"]


@pytest.mark.parametrize(("config", "method", "missing"), [
    ({}, "get", "IdempotencyPolicy"),
    ({}, "put", "IdempotencyPolicy"),
    ({"idempotency": {"enabled": False}}, "post", "IdempotencyPolicy"),
    ({"rate_limit": {"enabled": False}}, "post", "RateLimitPolicy"),
    ({"request_validation": {"mode": "off"}}, "post", "RequestValidationPolicy"),
    ({"response_validation": {"mode": "off"}}, "post", "ResponseValidationPolicy"),
    ({"upstreams": {"erp": {"url": "http://127.0.0.1:9", "circuit_breaker": {"enabled": False}}}}, "post",
     "CircuitBreakerPolicy"),
], ids=["idempotency-on-get", "idempotency-on-put", "idempotency-off", "rate-limit-off", "request-validation-off",
        "response-validation-off", "breaker-off"])
def test_a_policy_that_cannot_apply_is_left_out(tmp_path: Path, config: dict[str, Any], method: str,
                                                missing: str) -> None:
    assert chain(tmp_path, method, **config) == [name for name in ALL if name != missing]


def test_no_upstream_leaves_out_what_protects_it(tmp_path: Path) -> None:
    names = chain(tmp_path, upstream="nowhere")
    assert "CircuitBreakerPolicy" not in names and "BackendProtectionPolicy" not in names


def test_only_a_deprecated_or_retired_version_carries_the_deprecation_policy(tmp_path: Path) -> None:
    assert "DeprecationPolicy" not in chain(tmp_path)
    assert chain(tmp_path, state="deprecated").index("DeprecationPolicy") == 4
    assert "DeprecationPolicy" not in chain(tmp_path, state="deprecated", deprecation={"enabled": False})
    assert "DeprecationPolicy" in chain(tmp_path, state="retired", deprecation={"enabled": False})  # still 410
