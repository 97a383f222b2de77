"""CloudEvents 1.0 over HTTP: the three content modes in, structured events out, checked against
the event contract by validators compiled once per contract major.

    structured   Content-Type: application/cloudevents+json         body = one event
    batch        Content-Type: application/cloudevents-batch+json   body = a JSON array of events
    binary       ce-* headers carry the attributes, Content-Type is the datacontenttype, body = data

Whatever the mode, an event leaves here as the dict of its structured JSON form, so the
stream, the dead letters and the consumers see one shape.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import jsonschema_rs
import msgspec

from policies.request_validation import MALFORMED_JSON, UNSUPPORTED_MEDIA_TYPE
from registry.problems import ProblemType

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"

INVALID_BATCH = ProblemType(400, "invalid-batch", "Invalid batch")
BATCH_TOO_LARGE = ProblemType(413, "batch-too-large", "Batch too large")
SEQUENCE_ATTRIBUTE = "govgatesequence"
"""Extension attribute the gateway assigns: the event's number among the events of its subject."""
TYPE_KEYWORD = "x-cloudevents-type"
"""Optional keyword of an event schema: the CloudEvents `type` (or list of types) its events must carry."""
_MAX_MESSAGE = 300

ENVELOPE: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["specversion", "id", "source", "type", "data"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "minLength": 1, "maxLength": 256},
        "source": {"type": "string", "minLength": 1, "maxLength": 1024, "format": "uri-reference"},
        "type": {"type": "string", "minLength": 1, "maxLength": 256},
        "subject": {"type": "string", "minLength": 1, "maxLength": 256},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"type": "string", "pattern": r"^application/([A-Za-z0-9.!#$&^_-]+\+)?json\s*(;.*)?$"},
        "dataschema": {"type": "string", "minLength": 1, "format": "uri"},
        "data": {},  # checked by the contract's own validator
        "data_base64": {},  # refused below with a clearer message
    },
    # CloudEvents: attribute names are lower-case letters and digits; extension values are scalars
    "propertyNames": {"pattern": "^([a-z0-9]+|data_base64)$"},
    "additionalProperties": {"type": ["string", "integer", "boolean"]},
}


def parse(headers: dict[str, str], body: bytes, *, max_batch: int) -> tuple[list[Any], bool]:
    """The events a request carries, in the order sent, and whether it was a batch."""
    content_type = headers.get("content-type", "")
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == STRUCTURED:
        return [_decode(body)], False
    if media_type == BATCH:
        events = _decode(body)
        if not isinstance(events, list) or not events:
            raise INVALID_BATCH("a batch is a non-empty JSON array of CloudEvents")
        if len(events) > max_batch:
            raise BATCH_TOO_LARGE(f"a batch carries at most {max_batch} events; this one has {len(events)}")
        return events, True
    if "ce-specversion" in headers:
        return [_from_binary(headers, media_type, content_type, body)], False
    raise UNSUPPORTED_MEDIA_TYPE(f"send {STRUCTURED}, {BATCH}, or binary mode (ce-* headers and a JSON body); "
                                 f"got {content_type or '(no content type)'!r}",
                                 headers={"Accept-Post": f"{STRUCTURED}, {BATCH}, application/json"})


def _from_binary(headers: dict[str, str], media_type: str, content_type: str, body: bytes) -> dict[str, Any]:
    """A binary-mode event as its structured form: attributes from ce-* headers, data from the body."""
    if not (media_type == "application/json" or media_type.endswith("+json")):
        raise UNSUPPORTED_MEDIA_TYPE(f"this contract's data is JSON; the body's content type is "
                                     f"{content_type or '(none)'!r}", headers={"Accept-Post": f"{STRUCTURED}, {BATCH}, application/json"})
    event: dict[str, Any] = {name[3:]: unquote(value) for name, value in headers.items() if name.startswith("ce-")}
    event["datacontenttype"] = content_type
    event["data"] = _decode(body)
    return event


def _decode(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise MALFORMED_JSON(f"the body is not valid JSON: {exc}",
                             errors=[{"in": "body", "pointer": "", "message": str(exc)}]) from None


class EventValidator:
    """Envelope and data checks for the events of one contract major, compiled once."""

    def __init__(self, data_schema: dict[str, Any], *, check_formats: bool = True) -> None:
        self.envelope = jsonschema_rs.Draft202012Validator(ENVELOPE, validate_formats=check_formats, offline=True)
        # the data schema keeps its own dialect (2020-12 or draft-07), so it gets a validator of its own
        self.data = jsonschema_rs.validator_cls_for(data_schema)(data_schema, validate_formats=check_formats,
                                                                 offline=True)
        declared = data_schema.get(TYPE_KEYWORD)
        self.types = frozenset([declared] if isinstance(declared, str) else declared or [])

    def errors(self, event: Any, index: int | None = None) -> list[dict[str, Any]]:
        """Every way one event breaks the contract (empty when it is valid)."""
        if not isinstance(event, dict):
            return [_error(index, "", "a CloudEvent is a JSON object")]
        found = []
        if self.envelope.is_valid(event) is False:
            found += [_error(index, _pointer(e), e.message) for e in self.envelope.iter_errors(event)]
        if "data_base64" in event:
            found.append(_error(index, "/data_base64", "this contract's data is JSON: send it as `data`"))
        if SEQUENCE_ATTRIBUTE in event:
            found.append(_error(index, f"/{SEQUENCE_ATTRIBUTE}",
                                f"{SEQUENCE_ATTRIBUTE} is assigned by the gateway; do not send it"))
        if self.types and event.get("type") not in self.types:
            found.append(_error(index, "/type",
                                f"the contract's events have the type {' or '.join(sorted(self.types))}"))
        if "data" in event and self.data.is_valid(event["data"]) is False:
            found += [_error(index, "/data" + _pointer(e), e.message) for e in self.data.iter_errors(event["data"])]
        return found


def _pointer(error: Any) -> str:
    path = [str(p).replace("~", "~0").replace("/", "~1") for p in error.instance_path]
    if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required):
        path.append(error.kind.property)  # point at what is missing, not at its parent
    return "".join(f"/{p}" for p in path)


def _error(index: int | None, pointer: str, message: str) -> dict[str, Any]:
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    error: dict[str, Any] = {"in": "event", "pointer": pointer, "message": message}
    if index is not None:
        error["index"] = index
    return error
