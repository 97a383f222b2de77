"""The engine on shapes that trip other diff tools: cycles, refs, 3.0 vs 3.1, moved parameters."""

from __future__ import annotations

import copy
from typing import Any

from registry.compat.engine import diff_openapi


def api(schemas: dict[str, Any], body_ref: str = "#/components/schemas/Node", version: str = "1.0.0",
        openapi: str = "3.1.0") -> dict[str, Any]:
    return {
        "openapi": openapi, "info": {"title": "t", "version": version},
        "paths": {"/nodes": {"post": {
            "requestBody": {"content": {"application/json": {"schema": {"$ref": body_ref}}}},
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": body_ref}}}}},
        }}},
        "components": {"schemas": schemas},
    }


TREE = {"Node": {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 20},
    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
    "parent": {"$ref": "#/components/schemas/Node"},
}}}


def test_circular_schemas_terminate_and_changes_inside_them_are_found() -> None:
    changed = copy.deepcopy(TREE)
    changed["Node"]["properties"]["name"]["maxLength"] = 10
    report = diff_openapi(api(TREE), api(changed, version="2.0.0"))
    assert {(c.id, c.location.split()[-1]) for c in report.changes} == {
        ("request-body-max-length-decreased", "/name"), ("response-body-max-length-decreased", "/name")}


def test_mutually_recursive_components_renamed_is_no_change() -> None:
    pair = {"A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}},
            "B": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"}, "n": {"type": "integer"}}}}
    renamed = {"Alpha": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/Beta"}}},
               "Beta": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/Alpha"},
                                                          "n": {"type": "integer"}}}}
    assert diff_openapi(api(pair, "#/components/schemas/A"), api(renamed, "#/components/schemas/Alpha")).changes == []


def test_openapi_30_nullable_reads_like_31_type_null() -> None:
    old = api({"Node": {"type": "object", "properties": {"note": {"type": "string", "nullable": True}}}},
              openapi="3.0.3")
    new = api({"Node": {"type": "object", "properties": {"note": {"type": ["string", "null"]}}}}, version="1.0.0")
    assert diff_openapi(old, new).changes == []
    stricter = api({"Node": {"type": "object", "properties": {"note": {"type": "string"}}}}, version="2.0.0")
    assert [c.id for c in diff_openapi(old, stricter).changes] == [
        "request-body-nullable-removed", "response-body-nullable-removed"]


def test_exclusive_bounds_in_both_dialects() -> None:
    old = api({"Node": {"type": "number", "minimum": 0, "exclusiveMinimum": True}}, openapi="3.0.3")
    same = api({"Node": {"type": "number", "exclusiveMinimum": 0}})
    assert diff_openapi(old, same).changes == []
    looser = api({"Node": {"type": "number", "minimum": 0}}, version="1.1.0")
    ids = {c.id: c.level for c in diff_openapi(old, looser).changes}
    assert ids == {"request-body-min-decreased": "INFO", "response-body-min-decreased": "WARN"}


def test_path_parameter_renamed_is_the_same_operation() -> None:
    def doc(name: str) -> dict[str, Any]:
        return {"openapi": "3.1.0", "info": {"title": "t", "version": "1.0.0"}, "paths": {f"/orders/{{{name}}}": {
            "get": {"parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "ok"}}}}}}

    ids = [c.id for c in diff_openapi(doc("id"), doc("orderId")).changes]
    assert "api-operation-removed-without-deprecation" not in ids and "api-operation-added" not in ids


def test_a_property_named_like_a_keyword_is_not_documentation() -> None:
    old = api({"Node": {"type": "object", "properties": {"description": {"type": "string"}}}})
    new = api({"Node": {"type": "object", "properties": {"description": {"type": "integer"}}}}, version="2.0.0")
    assert {c.id for c in diff_openapi(old, new).changes} == {"request-body-type-changed", "response-body-type-changed"}


REPO = {"type": "object", "required": ["id", "name"], "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"}}}


def response_api(schema: dict[str, Any], version: str = "1.0.0") -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "t", "version": version},
            "paths": {"/repos": {"get": {"responses": {"200": {"description": "ok", "content": {
                "application/json": {"schema": schema}}}}}}},
            "components": {"schemas": {"repository": REPO}}}


def test_wrapping_a_ref_in_all_of_to_add_a_property_is_only_that_addition() -> None:
    old = response_api({"$ref": "#/components/schemas/repository"})
    new = response_api({"allOf": [{"$ref": "#/components/schemas/repository"},
                                  {"type": "object", "properties": {"topics": {"type": "array"}}}]}, "1.1.0")
    assert [(c.id, c.level) for c in diff_openapi(old, new).changes] == [
        ("response-body-optional-property-added", "INFO")]


def test_an_enum_split_into_one_of_consts_is_no_change() -> None:
    old = response_api({"type": "string", "enum": ["monthly", "yearly"]})
    new = response_api({"oneOf": [{"type": "string", "enum": ["monthly"]}, {"type": "string", "const": "yearly"}]})
    assert diff_openapi(old, new).changes == []


def test_a_schema_becoming_one_alternative_reports_only_the_new_alternatives() -> None:
    old = response_api({"type": "string"})
    new = response_api({"oneOf": [{"type": "string"}, {"type": "object"}]}, "2.0.0")
    assert [(c.id, c.message) for c in diff_openapi(old, new).changes] == [
        ("response-body-one-of-alternative-added", "oneOf alternative #1 added")]


def test_a_changed_alternative_among_several_is_matched_by_likeness() -> None:
    def event(kind: str, *extra: str) -> dict[str, Any]:
        return {"type": "object", "properties": {"event": {"type": "string"}, f"{kind}_at": {"type": "string"},
                                                  **{e: {"type": "string"} for e in extra}}}

    old = response_api({"anyOf": [event("labeled"), event("assigned"), event("closed")]})
    new = response_api({"anyOf": [event("labeled", "label"), event("assigned", "assignee"), event("closed")]}, "1.1.0")
    assert sorted(c.id for c in diff_openapi(old, new).changes) == ["response-body-optional-property-added"] * 2


def test_messages_show_values_as_json() -> None:
    old = api({"Node": {"type": ["boolean", "string"], "default": True}})
    new = api({"Node": {"type": ["boolean", "string"], "default": "true"}}, version="1.1.0")
    messages = {c.message for c in diff_openapi(old, new).changes}
    assert messages == {'default changed from true to "true"'}


def test_required_property_alternatives_read_as_requiredness() -> None:
    old = api({"Node": {"type": "object", "required": ["state"], "properties": {
        "state": {"type": "string"}, "assignees": {"type": "array"}}}})
    new = api({"Node": {"type": "object", "anyOf": [{"required": ["state"]}, {"required": ["assignees"]}],
                        "properties": {"state": {"type": "string"}, "assignees": {"type": "array"}}}}, version="2.0.0")
    assert {(c.id, c.level) for c in diff_openapi(old, new).changes} == {
        ("request-body-property-became-optional", "INFO"), ("response-body-property-became-optional", "ERR")}
