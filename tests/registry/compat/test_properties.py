"""Properties of the diff over generated documents: what must never be reported as a change."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.compat.engine import diff_openapi

NAMES = st.sampled_from(["id", "sku", "qty", "price", "note", "lines", "kind", "at"])
LEAVES = st.one_of(
    st.fixed_dictionaries({"type": st.just("string")}, optional={
        "maxLength": st.integers(1, 50), "format": st.sampled_from(["date", "uuid", "email"]),
        "enum": st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True)}),
    st.fixed_dictionaries({"type": st.sampled_from(["integer", "number"])}, optional={
        "minimum": st.integers(-5, 0), "maximum": st.integers(1, 100)}),
    st.just({"type": "boolean"}),
)


def _objects(children: st.SearchStrategy[dict]) -> st.SearchStrategy[dict]:
    properties = st.dictionaries(NAMES, children, min_size=1, max_size=4)
    return st.one_of(
        properties.flatmap(lambda props: st.fixed_dictionaries({
            "type": st.just("object"), "properties": st.just(props),
            "required": st.lists(st.sampled_from(sorted(props)), unique=True, max_size=len(props))},
            optional={"additionalProperties": st.just(False)})),
        st.fixed_dictionaries({"type": st.just("array"), "items": children}, optional={"maxItems": st.integers(1, 9)}),
        st.lists(children, min_size=2, max_size=3).map(lambda alts: {"oneOf": alts}),
    )


SCHEMAS = st.recursive(LEAVES, _objects, max_leaves=12)


@st.composite
def documents(draw: Any) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for index, path in enumerate(draw(st.lists(st.sampled_from(["/orders", "/orders/{id}", "/items", "/stock"]),
                                               min_size=1, max_size=3, unique=True))):
        operation: dict[str, Any] = {
            "operationId": f"op{index}",
            "parameters": [{"name": "limit", "in": "query", "schema": draw(LEAVES)}],
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": draw(SCHEMAS)}}}},
        }
        if "{id}" in path:
            operation["parameters"].append({"name": "id", "in": "path", "required": True, "schema": {"type": "string"}})
        if draw(st.booleans()):
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": draw(SCHEMAS)}}}
        paths[path] = {draw(st.sampled_from(["get", "post", "put"])): operation}
    return {"openapi": "3.1.0", "info": {"title": "generated", "version": "1.0.0"}, "paths": paths}


def schema_slots(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The media objects whose `schema` the transformations move around."""
    slots = []
    for item in document["paths"].values():
        for operation in item.values():
            slots += list(operation.get("requestBody", {}).get("content", {}).values())
            for response in operation["responses"].values():
                slots += list(response.get("content", {}).values())
    return slots


def to_components(document: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Move every body schema into components and refer to it."""
    moved = copy.deepcopy(document)
    schemas = moved.setdefault("components", {}).setdefault("schemas", {})
    for index, slot in enumerate(schema_slots(moved)):
        schemas[f"{prefix}{index}"] = slot["schema"]
        slot["schema"] = {"$ref": f"#/components/schemas/{prefix}{index}"}
    return moved


def reversed_keys(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: reversed_keys(node[k]) for k in reversed(list(node))}
    if isinstance(node, list):
        return [reversed_keys(v) for v in node]
    return node


def with_documentation(node: Any, depth: int = 0) -> Any:
    """Descriptions, examples, titles and unknown extensions sprinkled over every object."""
    if isinstance(node, dict):
        out = {k: with_documentation(v, depth + 1) if k not in ("properties", "enum", "required") else
               ({n: with_documentation(s, depth + 2) for n, s in v.items()} if k == "properties" else v)
               for k, v in node.items()}
        if "type" in node or "oneOf" in node or "operationId" in node:
            out.update({"description": f"d{depth}", "x-team-note": "ignored", "example": None, "title": "t"})
        return out
    if isinstance(node, list):
        return [with_documentation(v, depth + 1) for v in node]
    return node


SETTINGS = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(documents())
def test_a_document_has_no_changes_against_itself(document: dict[str, Any]) -> None:
    assert diff_openapi(document, copy.deepcopy(document)).changes == []


@SETTINGS
@given(documents())
def test_moving_schemas_into_components_is_no_change(document: dict[str, Any]) -> None:
    assert diff_openapi(document, to_components(document, "Schema")).changes == []
    assert diff_openapi(to_components(document, "Schema"), document).changes == []


@SETTINGS
@given(documents())
def test_renaming_components_with_their_refs_is_no_change(document: dict[str, Any]) -> None:
    assert diff_openapi(to_components(document, "Old"), to_components(document, "Renamed")).changes == []


@SETTINGS
@given(documents())
def test_key_order_is_no_change(document: dict[str, Any]) -> None:
    assert diff_openapi(document, reversed_keys(document)).changes == []


@SETTINGS
@given(documents())
def test_documentation_is_never_err_or_warn(document: dict[str, Any]) -> None:
    documented = with_documentation(document)
    documented["info"] = {**document["info"], "version": "1.0.1"}
    report = diff_openapi(document, documented)
    assert [c.id for c in report.changes] in ([], ["documentation-changed"])
    assert report.semver["required_bump"] == "none"


@SETTINGS
@given(documents(), documents())
def test_any_two_documents_diff_without_crashing_and_report_consistently(a: dict, b: dict) -> None:
    report = diff_openapi(a, b)
    assert report.summary["total"] == len(report.changes)
    json.dumps([c.message for c in report.changes])
    if any(c.id != "semver-bump-too-small" for c in report.at_or_above("ERR")):
        assert report.semver["required_bump"] == "major"
        assert report.changes[0].id == "semver-bump-too-small"  # both are 1.0.0: a breaking change needs 2.0.0
    elif any(c.id != "documentation-changed" for c in report.changes):
        assert report.semver["required_bump"] == "minor"
        assert [(c.id, c.level) for c in report.changes if c.id.startswith("semver-")] == [
            ("semver-minor-bump-missing", "INFO")]
    else:  # documentation needs no bump
        assert not any(c.id.startswith("semver-") for c in report.changes)
