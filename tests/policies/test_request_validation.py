"""The compiled request validator on hand-picked cases (the differential test covers the rest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from registry.problems import Problem
from policies.request_validation import OperationValidator
from registry.documents import load_file

LEGACY = load_file(Path(__file__).parent / "fixtures" / "legacy-pricing.v30.yaml")
PRICE = {"amount": 10.5, "validFrom": "2026-01-01"}
JSON = {"content-type": "application/json"}


def validator(method: str) -> OperationValidator:
    item = LEGACY["paths"]["/prices/{sku}"]
    return OperationValidator(LEGACY, item, item[method])


def errors(method: str, body: Any = None, *, query: str = "", headers: dict[str, str] | None = None,
           sku: str = "SKU-1") -> list[tuple[str, str]]:
    raw = b"" if body is None else json.dumps(body).encode()
    try:
        validator(method).check({"sku": sku}, query, {**JSON, **(headers or {})} if raw else (headers or {}), raw)
    except Problem as problem:
        return [(e["in"], e["pointer"]) for e in problem.errors or []] or [(str(problem.status), "")]
    return []


def test_openapi_30_dialect() -> None:
    assert errors("put", PRICE) == []  # readOnly `id` is required in responses only
    assert errors("put", {**PRICE, "discount": None, "validTo": None}) == []  # nullable
    assert errors("put", {**PRICE, "tier": None}) == [("body", "/tier")]  # nullable widens type, not enum
    assert errors("put", {**PRICE, "id": "7d0c6a6e-4f1e-4c3a-9e59-6f1f3f0a9b1c"}) == [("body", "/id")]  # readOnly
    assert errors("put", {**PRICE, "amount": 0}) == [("body", "/amount")]  # exclusiveMinimum: true
    assert errors("put", {**PRICE, "amount": 100000}) == [("body", "/amount")]  # exclusiveMaximum: true
    assert errors("put", {**PRICE, "tier": "gold"}) == [("body", "/tier")]
    assert errors("put", {**PRICE, "quantityBreaks": [2**31]}) == [("body", "/quantityBreaks/0")]  # int32
    assert errors("put", {**PRICE, "validFrom": "2026-13-01"}) == [("body", "/validFrom")]
    assert errors("put", {"amount": 1}) == [("body", "/validFrom")]  # the pointer names what is missing


def test_parameters_are_deserialised_by_schema_type() -> None:
    ok = {"x-price-list": "3"}
    assert errors("get", headers=ok, query="stores=1&stores=2&currency=EUR") == []
    assert errors("get", headers=ok, query="stores=1&stores=x") == [("query", "/stores/1")]
    assert errors("get", headers=ok, query="stores=0") == [("query", "/stores/0")]
    assert errors("get", headers=ok, query="currency=") == [("query", "/currency")]  # empty needs allowEmptyValue
    assert errors("get", headers={"x-price-list": "0"}) == [("header", "/x-price-list")]
    assert errors("get") == [("header", "/x-price-list")]
    assert errors("get", headers=ok, sku="lower-case") == [("path", "/sku")]


def test_body_problems() -> None:
    check = validator("put").check
    with pytest.raises(Problem) as missing:
        check({"sku": "SKU-1"}, "", {}, b"")
    assert missing.value.status == 400 and missing.value.errors[0]["message"] == "request body is required"
    with pytest.raises(Problem) as malformed:
        check({"sku": "SKU-1"}, "", JSON, b'{"amount": ')
    assert malformed.value.status == 400 and malformed.value.slug == "malformed-json"
    with pytest.raises(Problem) as media:
        check({"sku": "SKU-1"}, "", {"content-type": "text/plain"}, b"amount=1")
    assert media.value.status == 415 and media.value.headers["Accept-Post"] == "application/json"
    # a charset parameter does not change the media type
    check({"sku": "SKU-1"}, "", {"content-type": "application/json; charset=utf-8"}, json.dumps(PRICE).encode())


def test_bodies_that_are_not_json_at_all_are_400_not_500() -> None:
    check = validator("put").check
    for body in (b'{"amount": "\xff"}', b"[" * 10_000 + b"]" * 10_000):
        with pytest.raises(Problem) as refused:
            check({"sku": "SKU-1"}, "", JSON, body)
        assert refused.value.status == 400 and refused.value.slug == "malformed-json"
