"""Parsing, bundling and canonicalising contract documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import documents
from registry.errors import InvalidDocument

FIXTURES = Path(__file__).parent / "fixtures"


def test_relative_file_refs_are_bundled_into_components() -> None:
    bundled = documents.load_file(FIXTURES / "bundle" / "api.yaml")
    schemas = bundled["components"]["schemas"]
    body_ref = bundled["paths"]["/nodes"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref == "#/components/schemas/Node"
    node = schemas["Node"]
    assert node["properties"]["children"]["items"]["$ref"] == "#/components/schemas/Node"  # circular, kept as a ref
    # the imported Money clashes with the root's own Money: it is renamed, the root's is untouched
    assert schemas["Money"] == {"type": "string"}
    assert node["properties"]["price"]["$ref"] == "#/components/schemas/Money2"
    assert schemas["Money2"]["properties"]["amount"] == {"type": "string"}
    assert all(ref.startswith("#/") for _, ref in documents.iter_refs(bundled))


def test_remote_refs_are_refused_never_fetched(tmp_path: Path) -> None:
    spec = tmp_path / "api.yaml"
    spec.write_text("openapi: 3.1.0\ninfo: {title: t, version: 1.0.0}\npaths: {}\n"
                    "components: {schemas: {A: {$ref: 'https://example.com/a.yaml#/A'}}}\n")
    with pytest.raises(InvalidDocument, match="remote"):
        documents.load_file(spec)


def test_canonical_form_ignores_key_order_and_format() -> None:
    yaml_text = b"b: 1\na: {y: [1, 2], x: caf\xc3\xa9}\n"
    json_text = b'{"a": {"x": "caf\\u00e9", "y": [1, 2]}, "b": 1}'
    one, two = documents.parse(yaml_text), documents.parse(json_text)
    assert documents.canonical_json(one) == documents.canonical_json(two) == '{"a":{"x":"café","y":[1,2]},"b":1}'
    assert documents.sha256(documents.canonical_json(one)) == documents.sha256(documents.canonical_json(two))


@pytest.mark.parametrize("text", [
    b"a: &x [1]\nb: *x\n",  # aliases: the stuff of billion-laughs bombs
    b"\xff\xfe not utf-8",
    b"[1, 2, 3]",
    b"key: [unclosed",
    b"a:" + b" [" * 300 + b"]" * 300,  # deeper than MAX_DEPTH
])
def test_hostile_or_malformed_text_is_refused(text: bytes) -> None:
    with pytest.raises(InvalidDocument):
        documents.parse(text)


def test_resolve_pointer_escapes() -> None:
    document = {"paths": {"/a/{id}": {"get": {"x~y": 1}}}}
    assert documents.resolve_pointer(document, "#/paths/~1a~1{id}/get/x~0y") == 1
    with pytest.raises(KeyError):
        documents.resolve_pointer(document, "#/paths/nope")
