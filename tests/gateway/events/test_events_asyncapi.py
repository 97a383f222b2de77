"""AsyncAPI 3.0 documents of event contracts, and the bundled ones under docs/asyncapi/ kept current."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from gateway.events.envelope import EventValidator
from registry import asyncapi

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def event_entries(catalog: list[dict]) -> list[dict]:
    return [entry for entry in catalog if entry["kind"] == "event"]


def test_a_document_has_one_channel_with_publish_and_consume(event_entries: list[dict]) -> None:
    entry = next(e for e in event_entries if e["name"] == "events.inventory-adjusted")
    doc = asyncapi.document(entry["name"], "1.0.0", 1, entry["loaded"], description=entry["description"],
                            owner=entry["owner"], server="https://gw.retail.example")
    assert doc["asyncapi"] == "3.0.0" and doc["info"]["version"] == "1.0.0"
    assert doc["channels"]["events"]["address"] == "/events/events.inventory-adjusted/v1"
    assert doc["servers"]["govgate"] == {"host": "gw.retail.example", "protocol": "https",
                                         "description": "the govgate gateway"}
    operations = doc["operations"]
    assert (operations["publish"]["action"], operations["consume"]["action"]) == ("send", "receive")
    assert operations["publish"]["security"][0]["scopes"] == ["events:publish"]
    assert operations["consume"]["security"][0]["scopes"] == ["events:consume"]
    assert operations["publish"]["bindings"]["http"]["method"] == "POST"
    message = doc["components"]["messages"]["inventoryAdjusted"]
    assert message["contentType"] == "application/cloudevents+json"
    data = message["payload"]["properties"]["data"]
    assert "$schema" not in data and data["properties"] == entry["loaded"]["properties"]


def test_every_reference_resolves(event_entries: list[dict]) -> None:
    for entry in event_entries:
        doc = asyncapi.document(entry["name"], entry["version"], 1, entry["loaded"])
        refs = [node["$ref"] for node in _walk(doc) if isinstance(node, dict) and "$ref" in node]
        assert refs
        for ref in refs:
            target = doc
            for part in ref.removeprefix("#/").split("/"):
                target = target[part]
            assert isinstance(target, dict)


def test_message_examples_are_events_the_gateway_accepts(event_entries: list[dict]) -> None:
    for entry in event_entries:
        doc = asyncapi.document(entry["name"], entry["version"], 1, entry["loaded"], owner=entry["owner"])
        [message] = doc["components"]["messages"].values()
        assert message["examples"], entry["name"]
        for example in message["examples"]:
            jsonschema.Draft7Validator(message["payload"]).validate(example["payload"])
            assert EventValidator(entry["loaded"]).errors(example["payload"]) == []


def test_message_names_are_camel_case() -> None:
    assert asyncapi.message_name("events.inventory-adjusted") == "inventoryAdjusted"
    assert asyncapi.message_name("orders") == "orders"


def test_the_bundled_documents_in_docs_asyncapi_are_current(tmp_path: Path) -> None:
    written = asyncapi.write_catalog(ROOT / "contracts" / "catalog.yaml", tmp_path)
    assert {p.name for p in written} == {p.name for p in (ROOT / "docs" / "asyncapi").glob("*.json")}
    for path in written:
        assert json.loads(path.read_text()) == json.loads((ROOT / "docs" / "asyncapi" / path.name).read_text()), (
            f"docs/asyncapi/{path.name} is stale: run .venv/bin/python -m registry.asyncapi")


def _walk(node: object):
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)
