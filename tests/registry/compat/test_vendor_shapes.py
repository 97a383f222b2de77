"""The false alarms and misses found on real vendor specs (issue 13), on excerpts shaped like them.

The shapes come from consecutive releases of GitHub's REST description (`@octokit/openapi`
22.0.0 -> 23.0.0) and Stripe's description (2024-04-10): what changed there, cut down to the
schema that changed.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from registry.compat.engine import DiffTooLarge, Limits, diff_openapi
from registry.compat.events import diff_event_schemas


def api(version: str, paths: dict[str, Any], schemas: dict[str, Any] | None = None,
        openapi: str = "3.0.0") -> dict[str, Any]:
    return {"openapi": openapi, "info": {"title": "Stripe API (excerpt)", "version": version}, "paths": paths,
            "components": {"schemas": schemas or {}}}


def body(schema: dict[str, Any], *, request: bool = True, response: bool = True) -> dict[str, Any]:
    """POST /v1/customers with `schema` as request and/or response body, as Stripe's form-encoded API does."""
    operation: dict[str, Any] = {"operationId": "PostCustomers", "responses": {"200": {"description": "ok"}}}
    if request:
        operation["requestBody"] = {"content": {"application/x-www-form-urlencoded": {"schema": schema}}}
    if response:
        operation["responses"]["200"]["content"] = {"application/json": {"schema": schema}}
    return {"/v1/customers": {"post": operation}}


ADDRESS = {"properties": {"city": {"maxLength": 5000, "nullable": True, "type": "string"},
                          "country": {"maxLength": 5000, "nullable": True, "type": "string"},
                          "postal_code": {"maxLength": 5000, "nullable": True, "type": "string"}},
           "title": "Address", "x-expandableFields": []}


def ids(old: dict[str, Any], new: dict[str, Any], **options: Any) -> list[tuple[str, str]]:
    return sorted({(c.id, c.level) for c in diff_openapi(old, new, **options).changes})


# -- 1. the version check ------------------------------------------------------------------------
def test_documentation_only_under_the_same_version_needs_no_bump() -> None:
    old = api("2024-04-10", body({"$ref": "#/components/schemas/address"}), {"address": ADDRESS})
    new = copy.deepcopy(old)
    new["components"]["schemas"]["address"]["properties"]["city"]["description"] = "City, district, suburb."
    new["paths"]["/v1/customers"]["post"]["summary"] = "Create a customer"
    for old_version, new_version in (("1.0.0", "1.0.0"), ("2024-04-10", "2024-04-10")):
        old["info"]["version"], new["info"]["version"] = old_version, new_version
        report = diff_openapi(old, new)
        assert ids(old, new) == [("documentation-changed", "INFO")]
        assert report.semver["required_bump"] == "none"


def test_operations_added_under_the_same_version_are_info_not_a_failure() -> None:
    old = api("1.1.4", body({"$ref": "#/components/schemas/address"}), {"address": ADDRESS})
    new = copy.deepcopy(old)
    new["paths"]["/v1/customers/{customer}"] = {"get": {
        "operationId": "GetCustomersCustomer", "responses": {"200": {"description": "ok"}},
        "parameters": [{"name": "customer", "in": "path", "required": True, "schema": {"type": "string"}}]}}
    report = diff_openapi(old, new)
    assert ids(old, new) == [("api-operation-added", "INFO"), ("semver-minor-bump-missing", "INFO")]
    assert report.at_or_above("WARN") == [] and report.semver["required_bump"] == "minor"
    assert ("semver-minor-bump-missing", "WARN") in ids(old, new, minor_bump_level="WARN")


def test_a_breaking_change_without_a_major_bump_stays_err() -> None:
    old = api("1.1.4", body({"$ref": "#/components/schemas/address"}), {"address": ADDRESS})
    new = copy.deepcopy(old)
    new["info"]["version"] = "1.2.0"
    new["components"]["schemas"]["address"]["properties"]["city"]["maxLength"] = 100
    report = diff_openapi(old, new)
    assert report.changes[0].id == "semver-bump-too-small" and report.changes[0].level == "ERR"


# -- 2. a schema without `type` gains one ------------------------------------------------------------
def test_type_object_added_beside_properties_is_no_change() -> None:
    old = api("1.0.0", body({"$ref": "#/components/schemas/address"}), {"address": ADDRESS})
    new = copy.deepcopy(old)
    new["components"]["schemas"]["address"]["type"] = "object"
    assert diff_openapi(old, new).changes == []
    assert diff_openapi(new, old).changes == []


def test_a_string_enum_gaining_type_string_is_no_change() -> None:
    status = {"enum": ["active", "canceled", "incomplete"], "x-stripeBypassValidation": True}
    old = api("1.0.0", body({"type": "object", "properties": {"status": status}}))
    new = copy.deepcopy(old)
    for operation in new["paths"]["/v1/customers"].values():
        operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]["properties"]["status"][
            "type"] = "string"
        operation["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["status"]["type"] = \
            "string"
    assert diff_openapi(old, new).changes == []


def test_a_schema_of_any_type_gaining_one_narrows_it() -> None:
    old = api("1.0.0", body({"type": "object", "properties": {"metadata": {"description": "anything"}}}))
    new = copy.deepcopy(old)
    for media in ("requestBody", "responses"):
        operation = new["paths"]["/v1/customers"]["post"]
        content = operation[media]["content"] if media == "requestBody" else operation[media]["200"]["content"]
        next(iter(content.values()))["schema"]["properties"]["metadata"]["type"] = "object"
    assert ids(old, new) == [("request-body-type-narrowed", "ERR"), ("response-body-type-narrowed", "INFO"),
                             ("semver-bump-too-small", "ERR")]


# -- 3. constraints that constrain nothing ------------------------------------------------------------
@pytest.mark.parametrize(("before", "after"), [
    ({"type": "string"}, {"type": "string", "minLength": 0}),
    ({"type": "array", "items": {"type": "string"}}, {"type": "array", "items": {"type": "string"}, "minItems": 0}),
    ({"type": "number", "exclusiveMinimum": 0}, {"type": "number", "exclusiveMinimum": 0, "minimum": 0}),
    ({"type": "integer", "exclusiveMinimum": 0}, {"type": "integer", "minimum": 1}),
    ({"type": "integer", "format": "int32"}, {"type": "integer", "format": "int32", "maximum": 2147483647}),
    ({"type": "string", "pattern": "^[0-9]{5}$"}, {"type": "string", "pattern": "^[0-9]{5}$", "maxLength": 5}),
    ({"type": "string", "pattern": "^[A-Z]{2}$"}, {"type": "string", "pattern": "^[A-Z]{2}$", "minLength": 2}),
    ({"type": "string", "enum": ["card", "sepa_debit"]}, {"type": "string", "enum": ["card", "sepa_debit"],
                                                           "maxLength": 5000}),
    ({"type": "integer", "enum": [1, 7, 30]}, {"type": "integer", "enum": [1, 7, 30], "minimum": 1}),
    ({"allOf": [{"$ref": "#/components/schemas/id"}]}, {"allOf": [{"$ref": "#/components/schemas/id"}],
                                                        "maxLength": 9000}),
])
def test_a_constraint_that_admits_the_same_values_is_no_change(before: dict, after: dict) -> None:
    schemas = {"id": {"type": "string", "maxLength": 5000}}
    old = api("1.0.0", body({"type": "object", "properties": {"field": before}}), schemas, openapi="3.1.0")
    new = api("1.0.0", body({"type": "object", "properties": {"field": after}}), schemas, openapi="3.1.0")
    assert diff_openapi(old, new).changes == []


def test_a_constraint_with_an_effect_is_still_reported() -> None:
    old = api("1.0.0", body({"type": "object", "properties": {"field": {"type": "string"}}}, response=False))
    new = api("1.0.0", body({"type": "object", "properties": {"field": {"type": "string", "minLength": 1}}},
                            response=False))
    assert ("request-body-min-length-added", "ERR") in ids(old, new)
    tighter = api("1.0.0", body({"type": "object", "properties": {"field": {
        "type": "string", "pattern": "^[0-9]{5}$", "maxLength": 4}}}, response=False))
    patterned = api("1.0.0", body({"type": "object", "properties": {"field": {
        "type": "string", "pattern": "^[0-9]{5}$"}}}, response=False))
    assert ("request-body-max-length-added", "ERR") in ids(patterned, tighter)


# -- 4. a pattern that narrows (GitHub 22.0.0 -> 23.0.0) ----------------------------------------------
def test_the_commit_sha_pattern_github_narrowed_is_err_for_requests() -> None:
    def sarif(pattern: str) -> dict[str, Any]:
        commit_sha = {"type": "string", "minLength": 40, "maxLength": 40, "pattern": pattern,
                      "description": "The SHA of the commit to which the analysis you are uploading relates."}
        return {"openapi": "3.0.3", "info": {"title": "GitHub v3 REST API", "version": "1.1.4"}, "paths": {
            "/repos/{owner}/{repo}/code-scanning/sarifs": {"post": {
                "operationId": "code-scanning/upload-sarif", "responses": {"202": {"description": "ok"}},
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "properties": {"commit_sha": commit_sha}, "required": ["commit_sha"]}}}}}}}}

    report = diff_openapi(sarif("^[0-9a-fA-F]+$"), sarif("^([0-9a-fA-F]{40}(?:[0-9a-fA-F]{24})?)$"))
    assert [(c.id, c.level) for c in report.changes if c.id != "semver-bump-too-small"] == [
        ("request-body-pattern-narrowed", "ERR")]


def test_patterns_past_the_sampling_budget_stay_undecided() -> None:
    from registry.compat import patterns

    count = patterns.BUDGET + 2
    def doc(suffix: str) -> dict[str, Any]:
        fields = {f"f{i}": {"type": "string", "pattern": f"^[a-z]{{{i + 1}}}{suffix}$"} for i in range(count)}
        return api("1.0.0", body({"type": "object", "properties": fields}, response=False))

    report = diff_openapi(doc(""), doc("[0-9]"))
    judged = [c for c in report.changes if c.id == "request-body-pattern-narrowed"]
    undecided = [c for c in report.changes if c.id == "request-body-pattern-changed"]
    assert len(judged) == patterns.BUDGET and len(undecided) == 2
    assert all(f"more than {patterns.BUDGET} changed patterns" in c.message for c in undecided)


# -- 6, 7. event modes ---------------------------------------------------------------------------------
def test_modes_are_read_in_any_case_and_forward_refuses_a_new_enum_value() -> None:
    old = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
           "properties": {"reason": {"type": "string", "enum": ["damaged", "expired"]}}}
    new = copy.deepcopy(old)
    new["properties"]["reason"]["enum"].append("recount")
    assert [(c.id, c.level) for c in diff_event_schemas([old], new, mode="forward").changes] == [
        ("event-enum-value-added", "ERR")]
    assert [(c.id, c.level) for c in diff_event_schemas([old], new, mode="Backward").changes] == [
        ("event-enum-value-added", "INFO")]


# -- 8. any size ---------------------------------------------------------------------------------------
def shared_chain(depth: int, max_length: int) -> dict[str, Any]:
    """`depth` schemas, each with two properties referring to the next: 2**depth paths to the last one.

    Stripe's description has this shape (an expandable field is `anyOf: [string, $ref]`, and objects
    refer to each other through several fields), and the walk compared the last schema once per path.
    """
    schemas = {f"S{i}": {"type": "object", "properties": {
        "a": {"$ref": f"#/components/schemas/S{i + 1}"},
        "b": {"anyOf": [{"type": "string", "maxLength": 5000}, {"$ref": f"#/components/schemas/S{i + 1}"}]}}}
        for i in range(depth)}
    schemas[f"S{depth}"] = {"type": "object", "properties": {"id": {"type": "string", "maxLength": max_length}}}
    paths = {f"/v1/things{n}": {"post": {
        "operationId": f"PostThings{n}", "responses": {"200": {"description": "ok", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}}},
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}}}}
        for n in range(20)}
    return api("1.0.0", paths, schemas)


def test_deeply_shared_schemas_are_compared_once_and_reported_once_per_operation() -> None:
    start = time.perf_counter()
    report = diff_openapi(shared_chain(60, 5000), shared_chain(60, 100))  # 2**60 paths to S60
    assert time.perf_counter() - start < 5
    findings = [c for c in report.changes if c.id == "request-body-max-length-decreased"]
    assert len(findings) == 20  # one per operation, at the shortest path
    assert findings[0].location == "request body application/json " + "/a" * 60 + "/id"


def test_a_diff_past_its_limits_is_refused_not_half_reported() -> None:
    old, new = shared_chain(60, 5000), shared_chain(60, 100)
    with pytest.raises(DiffTooLarge, match="places"):
        diff_openapi(old, new, limits=Limits(places=500))
    with pytest.raises(DiffTooLarge, match="pairs"):
        diff_openapi(old, new, limits=Limits(pairs=10))
    with pytest.raises(DiffTooLarge, match="findings"):
        diff_openapi(old, new, limits=Limits(findings=30))
