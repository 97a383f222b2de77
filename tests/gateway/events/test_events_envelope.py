"""CloudEvents parsing (structured, binary, batch) and validation of envelope and data against a contract."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import msgspec
import pytest

from registry.problems import Problem
from gateway.events.envelope import BATCH, STRUCTURED, EventValidator, parse

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "contracts/events/inventory.adjusted.schema.json")
                    .read_text())
DATA = SCHEMA["examples"][0]
EVENT = {"specversion": "1.0", "id": "adj-1", "source": "urn:wms:be-01", "type": "com.retail.wms.inventory.adjusted",
         "subject": "TSHIRT-BLK-M", "time": "2025-11-28T06:45:00Z", "datacontenttype": "application/json",
         "data": DATA}


def event(**changes: object) -> dict:
    return {**copy.deepcopy(EVENT), **changes}


def test_structured_mode_is_one_event() -> None:
    events, batch = parse({"content-type": STRUCTURED + "; charset=utf-8"}, msgspec.json.encode(EVENT), max_batch=10)
    assert events == [EVENT] and batch is False


def test_binary_mode_takes_attributes_from_ce_headers_and_data_from_the_body() -> None:
    headers = {"content-type": "application/json", "ce-specversion": "1.0", "ce-id": "adj-2",
               "ce-source": "urn%3Awms%3Abe-01", "ce-type": "com.retail.wms.inventory.adjusted",
               "ce-subject": "TSHIRT-BLK-M", "ce-traceparent": "00-abc-def-01", "x-other": "ignored"}
    [found], batch = parse(headers, msgspec.json.encode(DATA), max_batch=10)
    assert batch is False
    assert found == {"specversion": "1.0", "id": "adj-2", "source": "urn:wms:be-01",
                     "type": "com.retail.wms.inventory.adjusted", "subject": "TSHIRT-BLK-M",
                     "traceparent": "00-abc-def-01", "datacontenttype": "application/json", "data": DATA}
    assert EventValidator(SCHEMA).errors(found) == []


def test_binary_mode_needs_json_data() -> None:
    with pytest.raises(Problem) as raised:
        parse({"content-type": "text/plain", "ce-specversion": "1.0"}, b"hello", max_batch=10)
    assert raised.value.status == 415


def test_a_batch_is_a_non_empty_array_within_the_limit() -> None:
    body = msgspec.json.encode([event(id="a"), event(id="b")])
    events, batch = parse({"content-type": BATCH}, body, max_batch=2)
    assert [e["id"] for e in events] == ["a", "b"] and batch is True
    with pytest.raises(Problem) as too_many:
        parse({"content-type": BATCH}, body, max_batch=1)
    assert too_many.value.status == 413 and too_many.value.slug == "batch-too-large"
    for empty in (b"[]", b"{}"):
        with pytest.raises(Problem) as raised:
            parse({"content-type": BATCH}, empty, max_batch=5)
        assert raised.value.slug == "invalid-batch"


@pytest.mark.parametrize("headers", [{"content-type": "application/json"}, {}])
def test_plain_json_without_ce_headers_is_415_naming_the_accepted_modes(headers: dict) -> None:
    with pytest.raises(Problem) as raised:
        parse(headers, msgspec.json.encode(EVENT), max_batch=10)
    assert raised.value.status == 415
    assert STRUCTURED in raised.value.headers["Accept-Post"]


def test_malformed_json_is_400() -> None:
    with pytest.raises(Problem) as raised:
        parse({"content-type": STRUCTURED}, b'{"specversion": ', max_batch=10)
    assert raised.value.status == 400 and raised.value.slug == "malformed-json"


def test_a_valid_event_has_no_errors() -> None:
    validator = EventValidator(SCHEMA)
    assert validator.errors(EVENT) == []
    minimal = {k: EVENT[k] for k in ("specversion", "id", "source", "type", "data")}
    assert validator.errors(minimal) == []
    assert validator.errors(event(myextension="x", count=3, flag=True)) == []


def test_every_error_of_envelope_and_data_is_listed_with_its_pointer() -> None:
    bad = event(specversion="0.3", id="", time="yesterday", dataschema="not a uri", datacontenttype="text/xml",
                govgatesequence=4, data={**DATA, "sku": "bad sku", "delta": 0, "colour": "red"})
    del bad["type"]
    errors = EventValidator(SCHEMA).errors(bad, index=3)
    pointers = sorted(e["pointer"] for e in errors)
    assert pointers == sorted(["/specversion", "/id", "/time", "/dataschema", "/datacontenttype", "/type",
                               "/govgatesequence", "/data/sku", "/data/delta", "/data"])
    assert all(e["in"] == "event" and e["index"] == 3 and e["message"] for e in errors)


def test_data_is_required_and_data_base64_refused() -> None:
    no_data = event()
    del no_data["data"]
    assert [e["pointer"] for e in EventValidator(SCHEMA).errors(no_data)] == ["/data"]
    errors = EventValidator(SCHEMA).errors(event(data_base64="e30="))
    assert [e["pointer"] for e in errors] == ["/data_base64"]


def test_attribute_names_and_extension_values_follow_cloudevents() -> None:
    errors = EventValidator(SCHEMA).errors(event(Upper="x", nested={"a": 1}))
    assert len(errors) == 2
    assert EventValidator(SCHEMA).errors(["not", "an", "object"]) == [
        {"in": "event", "pointer": "", "message": "a CloudEvent is a JSON object"}]


def test_formats_are_checked_unless_turned_off() -> None:
    late = event(data={**DATA, "adjustedAt": "not a time"})
    assert [e["pointer"] for e in EventValidator(SCHEMA).errors(late)] == ["/data/adjustedAt"]
    assert EventValidator(SCHEMA, check_formats=False).errors(late) == []


def test_a_schema_may_pin_the_cloudevents_type() -> None:
    pinned = EventValidator({**SCHEMA, "x-cloudevents-type": "com.retail.wms.inventory.adjusted"})
    assert pinned.errors(EVENT) == []
    assert [e["pointer"] for e in pinned.errors(event(type="com.retail.other"))] == ["/type"]


def test_draft_07_data_schemas_keep_their_dialect() -> None:
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
              "properties": {"n": {"type": "integer", "exclusiveMinimum": 0}}, "required": ["n"]}
    validator = EventValidator(schema)
    assert validator.errors(event(data={"n": 1})) == []
    assert [e["pointer"] for e in validator.errors(event(data={"n": 0}))] == ["/data/n"]
