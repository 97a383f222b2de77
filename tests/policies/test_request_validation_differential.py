"""The gateway's compiled validator and openapi-core (the oracle) agree on every request.

schemathesis generates valid and invalid requests (positive and negative modes) for
every operation of every bundled OpenAPI contract; both validators judge each one, and
any disagreement fails with the request that caused it. GOVGATE_DIFF_EXAMPLES sets the
budget per operation (200 in CI).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema_path import SchemaPath
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.validators import (
    V30RequestBodyValidator,
    V30RequestParametersValidator,
    V31RequestBodyValidator,
    V31RequestParametersValidator,
)
from werkzeug.datastructures import Headers, ImmutableMultiDict

from gateway.catalog import bundled_catalog, read_catalog
from gateway.routing import Operation, RoutingTable
from registry.problems import Problem
from policies.request_validation import OperationValidator, RequestValidationConfig, RequestValidationPolicy
from registry.documents import canonical_json, load_file
from registry.model import Contract, Version
from tests.policies.oracle import describe

EXAMPLES = int(os.environ.get("GOVGATE_DIFF_EXAMPLES", "200"))
ORACLE_HOST = "http://oracle.test"
# headers schemathesis adds for itself; they are not part of any contract
_TRANSPORT_HEADERS = {"user-agent", "accept-encoding", "accept", "connection", "x-schemathesis-testcaseid"}


FIXTURES = Path(__file__).parent / "fixtures"


def _operations() -> Iterator[Any]:
    legacy = {"name": "legacy.pricing", "kind": "openapi",
              "loaded": load_file(FIXTURES / "legacy-pricing.v30.yaml")}  # the OpenAPI 3.0 dialect
    for entry in [*read_catalog(bundled_catalog()), legacy]:
        if entry["kind"] != "openapi":
            continue
        for method_path in _methods(entry["loaded"]):
            yield pytest.param(entry, *method_path, id=f"{entry['name']}:{method_path[0].upper()} {method_path[1]}")


def _methods(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method, path) for path, item in document["paths"].items()
            for method in ("get", "put", "post", "delete", "patch") if method in item]


class _OracleRequest:
    """A request as openapi-core reads it."""

    def __init__(self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str],
                 body: bytes, content_type: str) -> None:
        self.host_url = ORACLE_HOST
        self.method = method.lower()
        self.path = path
        self.path_pattern = None
        self.body = body or None
        self.content_type = content_type
        self.parameters = RequestParameters(query=ImmutableMultiDict(query), header=Headers(headers),
                                            cookie=ImmutableMultiDict(), path={})


class _Judges:
    """Both validators for one contract."""

    def __init__(self, entry: dict[str, Any]) -> None:
        document = entry["loaded"]
        oracle_document = copy.deepcopy(document)
        oracle_document["servers"] = [{"url": ORACLE_HOST}]
        spec = SchemaPath.from_dict(oracle_document)
        v30 = str(document["openapi"]).startswith("3.0")
        self.oracle = [
            (V30RequestParametersValidator if v30 else V31RequestParametersValidator)(spec),
            (V30RequestBodyValidator if v30 else V31RequestBodyValidator)(spec),
        ]
        contract = Contract(name=entry["name"], kind="openapi", owner="t", description="", upstream="x",
                            created_at=None, created_by="t")  # type: ignore[arg-type]
        version = Version(contract=entry["name"], version=document["info"]["version"], major=1, sha256="",
                          state="published", created_at=None, created_by="t")  # type: ignore[arg-type]
        config = RequestValidationConfig()

        def chain(op: Operation) -> list[Any]:
            return [RequestValidationPolicy(config, OperationValidator(op.document, op.path_item, op.operation))]

        self.table = RoutingTable.compile([(contract, version, canonical_json(document))], chain)
        self.prefix = f"/{entry['name']}/v1"

    def gateway_accepts(self, method: str, raw_path: str, query: str, headers: dict[str, str], body: bytes) -> tuple[bool, str]:
        try:
            route, params, _ = self.table.match(self.prefix + raw_path, method.upper())
            validator = route.chain[0].validator
            validator.check(params, query, headers, body)
        except Problem as problem:
            return False, f"{problem.status} {problem.detail} {json.dumps(problem.errors)[:600]}"
        return True, ""

    def oracle_accepts(self, request: _OracleRequest) -> tuple[bool, str]:
        errors = [e for validator in self.oracle for e in validator.iter_errors(request)]
        return not errors, "; ".join(f"{type(e).__name__}: {describe(e)}" for e in errors)[:600]


def _wire(case: Any) -> tuple[str, str, list[tuple[str, str]], dict[str, str], bytes, str]:
    """What the case looks like on the wire: raw path, query string, query pairs, headers, body, content type."""
    kwargs = case.as_transport_kwargs(base_url=ORACLE_HOST)
    url = urlsplit(kwargs["url"])
    params = kwargs.get("params") or {}
    pairs = [(str(k), _text(item)) for k, v in params.items() for item in (v if isinstance(v, list) else [v])]
    query = urlencode(pairs)
    headers = {k.lower(): str(v) for k, v in (kwargs.get("headers") or {}).items()
               if k.lower() not in _TRANSPORT_HEADERS}
    body = kwargs.get("data") or b""
    if "json" in kwargs:
        body = json.dumps(kwargs["json"]).encode()
    if isinstance(body, str):
        body = body.encode()
    content_type = headers.get("content-type", "")
    return url.path, query, pairs, headers, body, content_type


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


@pytest.mark.parametrize(("entry", "method", "path"), list(_operations()))
def test_gateway_and_openapi_core_agree(entry: dict[str, Any], method: str, path: str) -> None:
    judges = _Judges(entry)
    operation = schemathesis.openapi.from_dict(entry["loaded"])[path][method.upper()]
    strategy = st.one_of(operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
                         operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE))
    seen = {"accepted": 0, "rejected": 0}

    @settings(max_examples=EXAMPLES, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def agree(case: Any) -> None:
        raw_path, query, pairs, headers, body, content_type = _wire(case)
        ours, why_ours = judges.gateway_accepts(method, raw_path, query, headers, body)
        oracle, why_oracle = judges.oracle_accepts(
            _OracleRequest(method, raw_path, pairs, headers, body, content_type))
        seen["accepted" if ours else "rejected"] += 1
        assert ours == oracle, (
            f"{method.upper()} {raw_path}?{query}\nheaders={headers}\nbody={body[:500]!r}\n"
            f"gateway {'accepts' if ours else 'rejects'}: {why_ours}\n"
            f"openapi-core {'accepts' if oracle else 'rejects'}: {why_oracle}"
        )

    agree()
    # a comparison that only ever saw one verdict would prove little
    assert seen["accepted"] and seen["rejected"], seen
