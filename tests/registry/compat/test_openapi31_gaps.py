"""What the engine did not look at yet (issue 24): readOnly/writeOnly, renamed path parameters,
parameters as text, and security schemes nothing used."""

from __future__ import annotations

import copy
from typing import Any

from registry.compat.engine import diff_openapi


def books(path_name: str = "bookId", default: int = 10, book: dict[str, Any] | None = None) -> dict[str, Any]:
    book = book or {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    return {"openapi": "3.1.0", "info": {"title": "books", "version": "1.0.0"}, "paths": {
        f"/books/{{{path_name}}}": {"put": {
            "parameters": [{"name": path_name, "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "limit", "in": "query", "schema": {"type": "integer", "default": default}}],
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Book"}}}},
            "responses": {"200": {"description": "ok", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Book"}}}}}}}},
        "components": {"schemas": {"Book": book}}}


def found(old: dict[str, Any], new: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c.id, c.level) for c in diff_openapi(old, new).changes if not c.id.startswith("semver-")}


def test_a_required_read_only_property_added_does_not_break_requests() -> None:
    old = books()
    new = books(book={"type": "object", "properties": {"title": {"type": "string"},
                                                      "id": {"type": "string", "readOnly": True}},
                      "required": ["title", "id"]})
    assert found(old, new) == {("response-body-required-property-added", "INFO")}


def test_a_write_only_property_removed_does_not_break_responses() -> None:
    old = books(book={"type": "object", "properties": {"title": {"type": "string"},
                                                      "password": {"type": "string", "writeOnly": True}}})
    new = books(book={"type": "object", "properties": {"title": {"type": "string"}}})
    assert found(old, new) == {("request-body-optional-property-removed", "WARN")}


def test_a_renamed_path_parameter_is_the_same_parameter_and_its_changes_are_seen() -> None:
    assert found(books("bookId"), books("id")) == set()
    old, new = books("bookId"), books("id")
    new["paths"]["/books/{id}"]["put"]["parameters"][0]["schema"]["maxLength"] = 8
    assert found(old, new) == {("request-parameter-max-length-added", "ERR")}


def test_a_query_parameter_widened_from_number_to_string_is_compatible() -> None:
    old, new = books(), books()
    new["paths"]["/books/{bookId}"]["put"]["parameters"][1]["schema"] = {"type": "string", "default": "10"}
    assert ("request-parameter-type-generalized", "INFO") in found(old, new)
    assert not any(level == "ERR" for _, level in found(old, new))
    assert ("request-parameter-type-narrowed", "ERR") in found(new, old)


def test_removing_a_security_scheme_no_requirement_used_is_info() -> None:
    old = books()
    old["components"]["securitySchemes"] = {"legacyKey": {"type": "apiKey", "in": "header", "name": "X-Key"}}
    assert found(old, books()) == {("security-unused-scheme-removed", "INFO")}
    used = copy.deepcopy(old)
    used["security"] = [{"legacyKey": []}]
    assert ("security-scheme-removed", "ERR") in found(used, books())
