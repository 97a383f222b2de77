"""The compiled response validator and its policy on hand-picked cases (the differential test covers the rest)."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import msgspec
import pytest

from gateway.catalog import bundled_catalog, read_catalog
from policies.context import RequestContext
from registry.problems import Problem
from policies.response_validation import ResponseValidationConfig, ResponseValidationPolicy, ResponseValidator
from registry.documents import parse

ORDERS = next(e["loaded"] for e in read_catalog(bundled_catalog()) if e["name"] == "erp.sales-orders")
ORDER = ORDERS["components"]["examples"]["CreatedOrder"]["value"]
JSON = {"content-type": "application/json"}
PROBLEM = {"content-type": "application/problem+json"}

LEGACY = parse("""
openapi: 3.0.3
info: {title: Legacy pricing, version: 1.0.0}
paths:
  /prices/{sku}:
    get:
      responses:
        '200':
          description: the price
          headers:
            X-Price-List: {required: true, schema: {type: integer, minimum: 0, exclusiveMinimum: true}}
            X-Stores: {schema: {type: array, items: {type: integer}}}
            Content-Type: {required: true, schema: {type: string, enum: [ignored/by-openapi]}}
          content:
            application/json: {schema: {$ref: '#/components/schemas/Price'}}
        '204': {description: nothing}
        '404':
          description: exact beats the range
          content: {text/plain: {schema: {type: string}}}
        '4XX':
          description: client errors
          content: {application/problem+json: {schema: {$ref: '#/components/schemas/Problem'}}}
        default:
          description: anything else
          content: {application/json: {schema: {$ref: '#/components/schemas/Problem'}}}
components:
  schemas:
    Price:
      type: object
      additionalProperties: false
      required: [id, amount, secret]
      properties:
        id: {type: string, format: uuid, readOnly: true}
        secret: {type: string, writeOnly: true}
        amount: {type: number, minimum: 0, exclusiveMinimum: true}
        discount: {type: number, nullable: true, maximum: 1}
        tier: {type: string, enum: [standard, member], nullable: true}
    Problem:
      type: object
      required: [title, status]
      properties:
        title: {type: string}
        status: {type: integer, minimum: 100, maximum: 599}
""")
PRICE = {"id": "3f1c2a9e-6d4b-4c1e-9a7f-2b8d5e6f7a10", "amount": 10.5}
PRICE_HEADERS = {**JSON, "x-price-list": "3"}


def legacy(**kwargs: Any) -> ResponseValidator:
    return ResponseValidator(LEGACY, LEGACY["paths"]["/prices/{sku}"]["get"], **kwargs)


def orders(path: str, method: str) -> ResponseValidator:
    return ResponseValidator(ORDERS, ORDERS["paths"][path][method])


def where(errors: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(e["in"], e["pointer"]) for e in errors]


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def test_a_valid_response_has_no_errors() -> None:
    assert orders("/orders", "post").check(201, {**JSON, "location": "/orders/1"}, encode(ORDER)) == []
    assert orders("/orders/{orderId}", "get").check(200, {"content-type": "application/json; charset=utf-8"},
                                                      encode(ORDER)) == []


def test_an_undeclared_status() -> None:
    errors = orders("/orders/{orderId}", "get").check(500, JSON, encode({}))
    assert where(errors) == [("status", "")]
    assert errors[0]["message"].startswith("status 500 is not declared")


def test_body_schema_violations_point_at_the_member() -> None:
    check = orders("/orders/{orderId}", "get").check
    assert where(check(200, JSON, encode({k: v for k, v in ORDER.items() if k != "id"}))) == [("body", "/id")]
    wrong = copy.deepcopy(ORDER)
    wrong["lines"][0]["quantity"] = "2"
    assert where(check(200, JSON, encode(wrong))) == [("body", "/lines/0/quantity")]
    assert where(check(200, JSON, encode({**ORDER, "status": "lost"}))) == [("body", "/status")]
    assert where(check(200, JSON, encode({**ORDER, "notes": None}))) == []  # 3.1: type [string, "null"]
    assert where(check(200, JSON, encode({**ORDER, "createdAt": "yesterday"}))) == [("body", "/createdAt")]


def test_formats_can_be_left_unchecked() -> None:
    body = encode({**PRICE, "id": "not-a-uuid"})
    assert where(legacy().check(200, PRICE_HEADERS, body)) == [("body", "/id")]
    assert legacy(check_formats=False).check(200, PRICE_HEADERS, body) == []


def test_openapi_30_read_only_and_nullable_in_responses() -> None:
    check = legacy().check
    assert check(200, PRICE_HEADERS, encode(PRICE)) == []  # writeOnly `secret` is required in requests only
    assert where(check(200, PRICE_HEADERS, encode({**PRICE, "secret": "s"}))) == [("body", "/secret")]  # 3.0
    assert where(check(200, PRICE_HEADERS, encode({"amount": 1}))) == [("body", "/id")]  # readOnly: required here
    assert check(200, PRICE_HEADERS, encode({**PRICE, "discount": None})) == []
    assert where(check(200, PRICE_HEADERS, encode({**PRICE, "amount": 0}))) == [("body", "/amount")]


def test_openapi_30_nullable_does_not_widen_an_enum() -> None:
    assert where(legacy().check(200, PRICE_HEADERS, encode({**PRICE, "tier": None}))) == [("body", "/tier")]


def test_headers() -> None:
    check = legacy().check
    body = encode(PRICE)
    assert where(check(200, JSON, body)) == [("header", "/x-price-list")]  # required and missing
    assert where(check(200, {**PRICE_HEADERS, "x-price-list": "0"}, body)) == [("header", "/x-price-list")]
    assert where(check(200, {**PRICE_HEADERS, "x-price-list": "three"}, body)) == [("header", "/x-price-list")]
    assert check(200, {**PRICE_HEADERS, "x-stores": "1,2"}, body) == []  # simple style: comma-separated
    assert where(check(200, {**PRICE_HEADERS, "x-stores": "1,b"}, body)) == [("header", "/x-stores/1")]
    # a declared Content-Type header is ignored, as OpenAPI says: the media types say it
    assert check(200, {**PRICE_HEADERS, "content-type": "application/json"}, body) == []


def test_exact_status_then_range_then_default() -> None:
    validator = legacy()
    assert validator.find(404) is validator.responses["404"]
    assert validator.find(409) is validator.responses["4XX"]
    assert validator.find(503) is validator.responses["default"]
    assert validator.check(404, {"content-type": "text/plain"}, b"no such price") == []  # not JSON: not parsed
    assert validator.check(409, PROBLEM, encode({"title": "Conflict", "status": 409})) == []
    assert where(validator.check(409, PROBLEM, encode({"title": "Conflict"}))) == [("body", "/status")]
    assert validator.check(503, JSON, encode({"title": "Unavailable", "status": 503})) == []
    assert where(validator.check(503, PROBLEM, b"{}")) == [("header", "/content-type")]


def test_problem_json_error_bodies() -> None:
    check = orders("/orders/{orderId}/cancel", "post").check
    problem = {"type": "about:blank", "title": "Conflict", "status": 409, "detail": "already cancelled"}
    assert check(409, PROBLEM, encode(problem)) == []
    assert check(400, PROBLEM, encode({**problem, "status": 400, "errors": [{"pointer": "/a", "message": "m"}]})) == []
    assert where(check(404, PROBLEM, encode({**problem, "status": "404"}))) == [("body", "/status")]
    assert where(check(409, PROBLEM, encode({**problem, "type": "not a uri"}))) == [("body", "/type")]
    assert where(check(409, PROBLEM, encode({**problem, "errors": [{"pointer": "/a"}]}))) == [
        ("body", "/errors/0/message")]


def test_media_type_and_body_problems() -> None:
    check = orders("/orders/{orderId}", "get").check
    not_json = check(200, JSON, b"<order/>")
    assert where(not_json) == [("body", "")] and not_json[0]["message"].startswith("the body is not valid JSON")
    assert where(check(200, {"content-type": "text/html"}, encode(ORDER))) == [("header", "/content-type")]
    assert where(check(200, {}, encode(ORDER))) == [("header", "/content-type")]
    assert where(check(200, JSON, b"")) == [("body", "")]  # content is declared, so a body is due
    assert legacy().check(204, {}, b"") == []  # nothing declared, nothing checked
    assert legacy().check(204, {}, b"anything") == []
    assert check(200, JSON, None) == []  # None: the body was too large to check


# -- the policy -------------------------------------------------------------------------------

def context(status: int, headers: list[tuple[str, str]], body: bytes) -> RequestContext:
    ctx = RequestContext(method="GET", path="/orders/1", raw_path="/orders/1", query_string="", headers={},
                         client="127.0.0.1", scheme="http", host="gateway")
    ctx.correlation_id = "cid-1"
    ctx.response_status, ctx.response_headers, ctx.response_body = status, headers, body
    return ctx


def policy(**config: Any) -> ResponseValidationPolicy:
    return ResponseValidationPolicy(ResponseValidationConfig(**config), orders("/orders/{orderId}", "get"))


BROKEN = encode({k: v for k, v in ORDER.items() if k != "id"})
HEADERS = [("Content-Type", "application/json")]


def test_enforce_turns_an_invalid_response_into_a_502() -> None:
    enforcing = policy(mode="enforce")
    ctx = context(200, HEADERS, BROKEN)
    with pytest.raises(Problem) as raised:
        enforcing.on_response(ctx)
    assert raised.value.status == 502 and raised.value.slug == "upstream-response-invalid"
    assert where(raised.value.errors or []) == [("body", "/id")]
    valid = context(200, HEADERS, encode(ORDER))
    enforcing.on_response(valid)
    assert valid.response_invalid is None


def test_report_passes_the_response_on_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    reporting = policy()  # report is the default
    ctx = context(200, HEADERS, BROKEN)
    with caplog.at_level(logging.WARNING, logger="govgate.validation"):
        reporting.on_response(ctx)
    assert where(ctx.response_violations) == [("body", "/id")]
    assert ctx.response_body == BROKEN
    [record] = caplog.records
    assert record.__dict__["correlation_id"] == "cid-1"
    assert record.__dict__["errors"] == ctx.response_violations


def test_repeated_headers_are_joined_as_a_list() -> None:
    config = ResponseValidationConfig(mode="enforce")
    headers = [("Content-Type", "application/json"), ("X-Price-List", "3"), ("X-Stores", "1"), ("x-stores", "2, 3")]
    ResponseValidationPolicy(config, legacy()).on_response(context(200, headers, encode(PRICE)))
    created = ResponseValidationPolicy(config, orders("/orders", "post"))
    with pytest.raises(Problem) as raised:  # two Location lines make no URI reference
        created.on_response(context(201, [*HEADERS, ("Location", "/orders/1"), ("location", "/orders/2")],
                                    encode(ORDER)))
    assert where(raised.value.errors or []) == [("header", "/location")]


def test_what_is_not_validated() -> None:
    skipped = context(200, HEADERS, BROKEN)
    policy(mode="off").on_response(skipped)
    assert skipped.response_invalid is None
    replayed = context(200, HEADERS, BROKEN)
    replayed.answer(200, HEADERS, BROKEN)  # a stored answer, replayed without the upstream
    policy(mode="enforce").on_response(replayed)  # checked when it was first answered
    limited = policy(mode="enforce", max_body_bytes=100)
    unchecked = context(200, HEADERS, BROKEN)
    limited.on_response(unchecked)  # too large: the body goes out unchecked
    assert unchecked.response_invalid is None
    with pytest.raises(Problem):  # the status still is checked
        limited.on_response(context(500, HEADERS, BROKEN))


def test_config_is_declarative() -> None:
    config = msgspec.json.decode(b'{"mode": "enforce", "max_body_bytes": 2048}', type=ResponseValidationConfig)
    assert (config.mode, config.check_formats, config.max_body_bytes) == ("enforce", True, 2048)
    assert ResponseValidationConfig().max_body_bytes == 1024 * 1024
    for bad in (b'{"mode": "strict"}', b'{"max_body_bytes": -1}', b'{"unknown": 1}'):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(bad, type=ResponseValidationConfig)
