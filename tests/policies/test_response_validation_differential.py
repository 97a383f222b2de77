"""The gateway's compiled response validator and openapi-core (the oracle) agree on every response.

For every operation of every bundled OpenAPI contract (and an OpenAPI 3.0 contract below),
responses are generated from each declared status, media type and header set: valid
ones, then invalid ones made by mutating a valid one (a value of another type, a dropped
key, an undeclared string, an extra property, a missing or garbled header, an undeclared
status or media type, an empty or truncated body), plus schemathesis' own negative bodies.
Both validators judge each one; any disagreement fails with the response that caused it.
GOVGATE_DIFF_EXAMPLES sets the budget per operation (200 in CI).

Bodies come from schemathesis' generator (the request bodies of a synthetic document whose
operations take each response's headers and schema): hypothesis-jsonschema 0.23 cannot run
on the installed hypothesis (`'many' object has no attribute 'more'`).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema_path import SchemaPath
from openapi_core.deserializing.media_types.util import json_loads
from openapi_core.testing import MockResponse
from openapi_core.validation.response.validators import V30ResponseValidator, V31ResponseValidator

from gateway.catalog import bundled_catalog, read_catalog
from policies.context import RequestContext
from registry.problems import Problem
from policies.response_validation import ResponseValidationConfig, ResponseValidationPolicy, ResponseValidator
from registry.documents import parse, resolve_pointer
from registry.schemas import components_as_json_schema, convert, is_openapi_30
from tests.policies.oracle import describe

EXAMPLES = int(os.environ.get("GOVGATE_DIFF_EXAMPLES", "200"))
ORACLE_HOST = "http://oracle.test"
METHODS = ("get", "put", "post", "delete", "patch")
_TRANSPORT_HEADERS = {"user-agent", "accept-encoding", "accept", "connection", "x-schemathesis-testcaseid",
                      "content-type", "content-length"}
_STATUSES = (200, 201, 202, 204, 301, 304, 400, 401, 404, 409, 418, 422, 500, 502, 503)

# The OpenAPI 3.0 dialect in responses: nullable, boolean exclusive bounds, int32, a readOnly
# property required in responses, a writeOnly one that is not, header casting, 4XX and default.
LEGACY_30 = parse("""
openapi: 3.0.3
info: {title: Legacy pricing responses, version: 1.0.0}
paths:
  /prices/{sku}:
    get:
      operationId: getPrice
      parameters: [{name: sku, in: path, required: true, schema: {type: string}}]
      responses:
        '200':
          description: the price
          headers:
            X-Price-List: {required: true, schema: {type: integer, format: int32, minimum: 0, exclusiveMinimum: true}}
            X-Stores: {schema: {type: array, maxItems: 3, items: {type: integer, minimum: 1}}}
            Content-Type: {required: true, schema: {type: string, enum: [never/checked]}}
          content:
            application/json: {schema: {$ref: '#/components/schemas/Price'}}
        '4XX':
          description: the request was wrong
          content:
            application/problem+json: {schema: {$ref: '#/components/schemas/Problem'}}
        default:
          description: anything else
          content:
            application/json: {schema: {$ref: '#/components/schemas/Problem'}}
components:
  schemas:
    Price:
      type: object
      additionalProperties: false
      required: [id, amount, validFrom, secret]
      properties:
        id: {type: string, format: uuid, readOnly: true}
        secret: {type: string, writeOnly: true}
        amount: {type: number, minimum: 0, exclusiveMinimum: true, maximum: 100000, exclusiveMaximum: true}
        discount: {type: number, nullable: true, minimum: 0, maximum: 1}
        validFrom: {type: string, format: date}
        validTo: {type: string, format: date-time, nullable: true}
        tier: {type: string, enum: [standard, member], nullable: true}
        quantityBreaks: {type: array, maxItems: 10, items: {type: integer, format: int32}}
    Problem:
      type: object
      required: [title, status]
      properties:
        title: {type: string, maxLength: 80}
        status: {type: integer, minimum: 100, maximum: 599}
""")


def _operations() -> Iterator[Any]:
    legacy = {"name": "legacy.pricing", "kind": "openapi", "loaded": LEGACY_30}
    for entry in [*read_catalog(bundled_catalog()), legacy]:
        if entry["kind"] != "openapi":
            continue
        for path, item in entry["loaded"]["paths"].items():
            for method in METHODS:
                if method in item:
                    yield pytest.param(entry, method, path, id=f"{entry['name']}:{method.upper()} {path}")


@dataclass(frozen=True)
class WireResponse:
    """A response as the upstream sends it."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def __str__(self) -> str:
        return f"{self.status} headers={list(self.headers)}\nbody={self.body[:800]!r}"


# -- the oracle -------------------------------------------------------------------------------

# openapi-core checks `uri-reference` only when the optional rfc3986-validator is installed; it
# is not, so the oracle gets RFC 3986 (appendix A) here, transcribed from the ABNF.
_PCT = r"%[0-9A-Fa-f]{2}"
_SUB = r"A-Za-z0-9\-._~!$&'()*+,;="
_SEGMENT_NZ_NC = rf"(?:[{_SUB}@]|{_PCT})+"
_PCHAR = rf"(?:[{_SUB}:@]|{_PCT})"
_AUTHORITY = (rf"(?:(?:[{_SUB}:]|{_PCT})*@)?(?:\[[^\]/]*\]|(?:[{_SUB}]|{_PCT})*)(?::[0-9]*)?")
_PATH_ABEMPTY = rf"(?:/{_PCHAR}*)*"
_TAIL = rf"(?:\?(?:{_PCHAR}|[/?])*)?(?:\#(?:{_PCHAR}|[/?])*)?"
_URI_REFERENCE = re.compile(
    rf"(?:[A-Za-z][A-Za-z0-9+.\-]*:(?://{_AUTHORITY}{_PATH_ABEMPTY}|/(?:{_PCHAR}+{_PATH_ABEMPTY})?"
    rf"|{_PCHAR}+{_PATH_ABEMPTY}|)"  # URI: scheme ":" hier-part
    rf"|//{_AUTHORITY}{_PATH_ABEMPTY}|/(?:{_PCHAR}+{_PATH_ABEMPTY})?|{_SEGMENT_NZ_NC}{_PATH_ABEMPTY}|)"  # relative-ref
    rf"{_TAIL}"
)
_IP_LITERAL = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//(?:[^/?#@]*@)?\[([^\]]*)\]")


def _is_uri_reference(value: object) -> bool:
    if not isinstance(value, str):
        return True
    match = _URI_REFERENCE.fullmatch(value)
    if match is None:
        return False
    literal_match = _IP_LITERAL.match(value)
    if literal_match is None:
        return True
    literal = literal_match.group(1)
    if literal[:1] in "vV":
        return re.fullmatch(rf"[vV][0-9A-Fa-f]+\.[{_SUB}:]+", literal) is not None
    try:
        ipaddress.IPv6Address(literal)
    except ValueError:
        return False
    return True


# request_validation._cast reads at most 30 digits as an integer (a bound on int() of untrusted
# text); a longer all-digit header stays a string, so the gateway rejects it as "not of type
# integer" where openapi-core casts it. Only reachable for an integer schema without a bound
# (int32 / int64 / maximum make both reject); discounted in the gateway's verdict.
_LONG_INTEGER = re.compile(r'"-?\d{31,}" is not of type "integer"')


def _tolerated(error: BaseException) -> bool:
    """An oracle error that stems from a documented semantic difference, not from the response.

    Only an InvalidData whose every schema error is one of these is discounted; any other
    error in the same body still counts.
    """
    schema_errors = getattr(error.__cause__, "schema_errors", None)
    return bool(schema_errors) and all(_whole_float(e) for e in schema_errors)


def _whole_float(error: Any) -> bool:
    """OpenAPI 3.0 (JSON Schema draft 5): 100.0 is not an `integer`; 2020-12 says it is.

    registry.schemas.convert turns 3.0 schemas into 2020-12, whose data model cannot tell 100.0
    from 100 (nor can jsonschema-rs, which sees the decoded value), so govgate accepts a whole
    float where a 3.0 contract says integer and openapi-core's 3.0 validator does not. For 3.1
    contracts both accept it.
    """
    return (error.validator == "type" and error.validator_value == "integer"
            and isinstance(error.instance, float) and error.instance.is_integer())


class _OracleRequest:
    """The request a response answers, as openapi-core reads it (only its path and method matter)."""

    def __init__(self, method: str, path: str) -> None:
        self.host_url = ORACLE_HOST
        self.method = method
        self.path = re.sub(r"\{[^}]+\}", "x1", path)
        self.path_pattern = None


class _Judges:
    """Both validators for one operation."""

    def __init__(self, document: dict[str, Any], method: str, path: str) -> None:
        oracle_document = copy.deepcopy(document)
        oracle_document["servers"] = [{"url": ORACLE_HOST}]
        validator_cls = V30ResponseValidator if is_openapi_30(document) else V31ResponseValidator
        self.oracle = validator_cls(
            SchemaPath.from_dict(oracle_document),
            extra_media_type_deserializers={"application/problem+json": json_loads},
            extra_format_validators={"uri-reference": _is_uri_reference},
        )
        self.request = _OracleRequest(method, path)
        config = ResponseValidationConfig(mode="enforce")
        self.policy = ResponseValidationPolicy(config, ResponseValidator(document, document["paths"][path][method]))

    def gateway_accepts(self, response: WireResponse) -> tuple[bool, str]:
        ctx = RequestContext(method=self.request.method.upper(), path=self.request.path,
                             raw_path=self.request.path, query_string="", headers={}, client="t",
                             scheme="http", host="t")
        ctx.response_status, ctx.response_headers, ctx.response_body = (
            response.status, list(response.headers), response.body)
        try:
            self.policy.on_response(ctx)
        except Problem as problem:
            errors = [e for e in problem.errors or []
                      if not (e["in"] == "header" and _LONG_INTEGER.fullmatch(e["message"]))]
            return not errors, json.dumps(problem.errors)[:800]
        return True, ""

    def oracle_accepts(self, response: WireResponse) -> tuple[bool, str]:
        headers = dict(response.headers)
        content_type = next((v for k, v in response.headers if k.lower() == "content-type"), None)
        mock = MockResponse(response.body, response.status, headers, content_type)  # type: ignore[arg-type]
        errors = [e for e in self.oracle.iter_errors(self.request, mock) if not _tolerated(e)]
        return not errors, "; ".join(f"{type(e).__name__}: {describe(e)}" for e in errors)[:800]


# -- generation -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Variant:
    """One declared (status, media type) of an operation and where its cases come from."""

    status: str
    media_type: str | None
    synthetic_path: str


def _deref(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        node = resolve_pointer(document, node["$ref"])
    return node


def _strip_annotations(node: Any) -> Any:
    """readOnly / writeOnly removed, so that the generator does not leave such properties out of bodies."""
    if isinstance(node, list):
        return [_strip_annotations(n) for n in node]
    if isinstance(node, dict):
        return {k: _strip_annotations(v) for k, v in node.items() if k not in ("readOnly", "writeOnly")}
    return node


def _synthetic(document: dict[str, Any], operation: dict[str, Any]) -> tuple[list[_Variant], Any]:
    """A document with one POST per declared (status, media type): the response's headers become
    header parameters and its (converted) schema the request body, so schemathesis generates both."""
    openapi_30 = is_openapi_30(document)
    paths: dict[str, Any] = {}
    variants = []
    for status, raw in (operation.get("responses") or {}).items():
        response = _deref(document, raw)
        parameters = []
        for name, header in (response.get("headers") or {}).items():
            header = _deref(document, header)
            if name.lower() == "content-type":
                continue
            schema = convert(header.get("schema", {}), openapi_30=openapi_30, direction="response")
            parameters.append({"name": name, "in": "header", "required": bool(header.get("required")),
                               "schema": _strip_annotations(schema)})
        for media_type, media in (response.get("content") or {None: {}}).items():
            path = f"/v{len(variants)}"
            synthetic: dict[str, Any] = {"parameters": parameters, "responses": {"200": {"description": "-"}}}
            if media_type is not None:
                schema = convert(media.get("schema", {}), openapi_30=openapi_30, direction="response")
                synthetic["requestBody"] = {"required": True,
                                            "content": {"application/json": {"schema": _strip_annotations(schema)}}}
            paths[path] = {"post": synthetic}
            variants.append(_Variant(str(status), media_type, path))
    components = _strip_annotations(components_as_json_schema(document, "response"))
    doc = {"openapi": "3.1.0", "info": {"title": "responses", "version": "1"}, "paths": paths,
           "components": {"schemas": components["schemas"]}}
    return variants, schemathesis.openapi.from_dict(doc)


def _status(variant: _Variant, declared: list[str]) -> st.SearchStrategy[int]:
    if variant.status.isdigit():
        return st.just(int(variant.status))
    exact = {int(s) for s in declared if s.isdigit()}
    if variant.status.upper().endswith("XX"):
        base = int(variant.status[0]) * 100
        return st.integers(base, base + 99).filter(lambda s: s not in exact)
    return st.sampled_from([s for s in _STATUSES if not _covered(s, declared)] or [599])


def _covered(status: int, declared: list[str]) -> bool:
    return str(status) in declared or f"{status // 100}XX" in {d.upper() for d in declared}


_BODY_MUTATIONS = ("retype", "drop", "undeclared-string", "extra-property")
_MUTATIONS = ("none", "none", "none", "none", "body", "body", "body", "header", "header",
              "status", "media-type", "empty", "truncated")
_OTHER_TYPE = {str: 12345, int: "12", float: "1.5", bool: "true", list: {"a": 1}, dict: ["a"], type(None): 0}


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _nodes(child, (*path, key))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copied = copy.copy(value)
    copied[path[0]] = _replace(value[path[0]], path[1:], new)
    return copied


@st.composite
def _mutated_body(draw: st.DrawFn, body: Any) -> Any:
    path, node = draw(st.sampled_from(list(_nodes(body))))
    mutation = draw(st.sampled_from(_BODY_MUTATIONS))
    if mutation == "drop" and isinstance(node, dict) and node:
        key = draw(st.sampled_from(sorted(node)))
        return _replace(body, path, {k: v for k, v in node.items() if k != key})
    if mutation == "undeclared-string" and isinstance(node, str):
        return _replace(body, path, "zz-not-declared")
    if mutation == "extra-property" and isinstance(node, dict):
        return _replace(body, path, {**node, "zzUndeclared": 1})
    return _replace(body, path, _OTHER_TYPE[type(node)])


@st.composite
def _responses(draw: st.DrawFn, document: dict[str, Any], operation: dict[str, Any]) -> WireResponse:
    variants, schema = _cached_synthetic(document, operation)
    declared = [str(s) for s in operation.get("responses") or {}]
    variant = draw(st.sampled_from(variants))
    mode = draw(st.sampled_from([schemathesis.GenerationMode.POSITIVE] * 3 + [schemathesis.GenerationMode.NEGATIVE]))
    case = draw(schema[variant.synthetic_path]["POST"].as_strategy(generation_mode=mode))
    status = draw(_status(variant, declared))
    headers = [(k, str(v)) for k, v in (case.headers or {}).items() if k.lower() not in _TRANSPORT_HEADERS]
    body: Any = case.body if variant.media_type is not None and _has_body(case) else None
    mutation = draw(st.sampled_from(_MUTATIONS)) if mode == schemathesis.GenerationMode.POSITIVE else "none"
    media_type = variant.media_type
    if mutation == "body" and body is not None:
        body = draw(_mutated_body(body))
    elif mutation == "header" and headers:
        index = draw(st.integers(0, len(headers) - 1))
        garbled = draw(st.sampled_from([None, "not a uri ref", "-1", "x,y", "2, 3"]))
        headers[index:index + 1] = [] if garbled is None else [(headers[index][0], garbled)]
    elif mutation == "status":
        status = draw(st.sampled_from([s for s in _STATUSES if not _covered(s, declared)] or [status]))
    elif mutation == "media-type" and media_type is not None:
        media_type = draw(st.sampled_from(["text/plain", "application/xml", "application/json; charset=utf-8"]))
    raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    if mutation == "empty":
        raw = b""
    elif mutation == "truncated" and raw:
        raw = raw[:-1]
    if media_type is not None:
        headers.append(("Content-Type", media_type))
    return WireResponse(status, tuple(headers), raw)


def _has_body(case: Any) -> bool:
    return type(case.body).__name__ != "NotSet"


_SYNTHETIC: dict[int, tuple[list[_Variant], Any]] = {}


def _cached_synthetic(document: dict[str, Any], operation: dict[str, Any]) -> tuple[list[_Variant], Any]:
    key = id(operation)
    if key not in _SYNTHETIC:
        _SYNTHETIC[key] = _synthetic(document, operation)
    return _SYNTHETIC[key]


@pytest.mark.parametrize(("entry", "method", "path"), list(_operations()))
def test_gateway_and_openapi_core_agree(entry: dict[str, Any], method: str, path: str,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="govgate.validation")  # every rejection logs a warning
    document = entry["loaded"]
    operation = document["paths"][path][method]
    judges = _Judges(document, method, path)
    seen = {"accepted": 0, "rejected": 0}

    @settings(max_examples=EXAMPLES, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(_responses(document, operation))
    def agree(response: WireResponse) -> None:
        ours, why_ours = judges.gateway_accepts(response)
        oracle, why_oracle = judges.oracle_accepts(response)
        seen["accepted" if ours else "rejected"] += 1
        assert ours == oracle, (
            f"{method.upper()} {path} answered {response}\n"
            f"gateway {'accepts' if ours else 'rejects'}: {why_ours}\n"
            f"openapi-core {'accepts' if oracle else 'rejects'}: {why_oracle}"
        )

    agree()
    # a comparison that only ever saw one verdict would prove little
    assert seen["accepted"] and seen["rejected"], seen
