"""AsyncAPI 3.0 documents for event contracts: one channel per contract major, publish and consume over HTTP.

The message payload is the CloudEvents 1.0 envelope (structured mode) whose `data` is the
contract's JSON Schema, so a producer reads the whole event it must send in one place.

    python -m registry.asyncapi [CATALOG] [OUTDIR]    writes OUTDIR/<contract>.v<major>.json per event contract
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from registry import documents

ASYNCAPI_VERSION = "3.0.0"
STRUCTURED = "application/cloudevents+json"
PUBLISH_SCOPE = "events:publish"
CONSUME_SCOPE = "events:consume"
HTTP_BINDING = "0.3.0"

# what the envelope looks like; gateway/events/envelope.py compiles its own checks from the same fields
ENVELOPE_PROPERTIES: dict[str, Any] = {
    "specversion": {"const": "1.0", "description": "CloudEvents version."},
    "id": {"type": "string", "minLength": 1, "maxLength": 256,
           "description": "Unique per source: (source, id) is de-duplicated by the gateway."},
    "source": {"type": "string", "minLength": 1, "format": "uri-reference", "description": "Who emits the event."},
    "type": {"type": "string", "minLength": 1, "description": "Kind of occurrence, reverse-DNS."},
    "subject": {"type": "string", "minLength": 1,
                "description": "What the event is about; events of one subject keep their order."},
    "time": {"type": "string", "format": "date-time"},
    "datacontenttype": {"type": "string", "description": "application/json when given."},
    "dataschema": {"type": "string", "format": "uri"},
    "govgatesequence": {"type": "integer", "minimum": 1, "readOnly": True,
                        "description": "Assigned by the gateway: the event's number among its subject's events "
                                       "(1, 2, 3, …), for consumers to detect gaps and reordering."},
}


def message_name(contract: str) -> str:
    """`events.inventory-adjusted` → `inventoryAdjusted`."""
    words = contract.split(".")[-1].split("-")
    return words[0] + "".join(w.capitalize() for w in words[1:])


def document(contract: str, version: str, major: int, schema: dict[str, Any], *, description: str = "",
             owner: str = "", server: str | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of one published event contract version."""
    name = message_name(contract)
    address = f"/events/{contract}/v{major}"
    data = {k: v for k, v in schema.items() if k != "$schema"}
    event_type = schema.get("x-cloudevents-type")
    message: dict[str, Any] = {
        "name": name,
        "title": schema.get("title", contract),
        "summary": schema.get("description", description),
        "contentType": STRUCTURED,
        "payload": {"type": "object", "required": ["specversion", "id", "source", "type", "data"],
                    "properties": {**ENVELOPE_PROPERTIES, "data": data}},
        "examples": [{"name": f"example-{i}", "payload": {
            "specversion": "1.0", "id": f"example-{i}", "source": f"urn:{owner or 'producer'}",
            "type": event_type if isinstance(event_type, str) else contract, "data": example}}
            for i, example in enumerate(schema.get("examples") or [], start=1)],
    }
    scheme = {"type": "oauth2", "description": "A gateway token (POST /oauth2/token) of a consumer subscribed "
                                               "to this contract major.",
              "flows": {"clientCredentials": {"tokenUrl": "/oauth2/token", "availableScopes": {
                  PUBLISH_SCOPE: "append events", CONSUME_SCOPE: "read and acknowledge through consumer groups"}}}}
    channel_ref = {"$ref": "#/channels/events"}
    message_ref = {"$ref": f"#/channels/events/messages/{name}"}
    doc: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": contract, "version": version,
                 "description": (description + "\n\n" if description else "") +
                 "Published through govgate: POST CloudEvents (structured, binary or batch) to the channel; "
                 "read with a consumer group (GET ?group=G&count=N) and acknowledge (POST …/ack). "
                 "See docs/events.md.",
                 **({"tags": [{"name": f"owner:{owner}"}]} if owner else {})},
        "defaultContentType": STRUCTURED,
        "channels": {"events": {"address": address, "title": f"{contract} v{major}",
                                "messages": {name: {"$ref": f"#/components/messages/{name}"}}}},
        "operations": {
            "publish": {"action": "send", "channel": channel_ref, "messages": [message_ref],
                        "summary": "Append events: 202 with the stream ids, 200 for a duplicate (source, id).",
                        "security": [{**scheme, "scopes": [PUBLISH_SCOPE]}],
                        "bindings": {"http": {"method": "POST", "bindingVersion": HTTP_BINDING}}},
            "consume": {"action": "receive", "channel": channel_ref, "messages": [message_ref],
                        "summary": "Read through a consumer group; unacknowledged entries come again after "
                                   "the visibility timeout.",
                        "security": [{**scheme, "scopes": [CONSUME_SCOPE]}],
                        "bindings": {"http": {"method": "GET", "bindingVersion": HTTP_BINDING}}},
        },
        "components": {"messages": {name: message}},
    }
    if server:
        host = server.split("://", 1)[-1].rstrip("/")
        doc["servers"] = {"govgate": {"host": host, "protocol": server.split("://", 1)[0] if "://" in server
                                      else "http", "description": "the govgate gateway"}}
    return doc


def write_catalog(catalog: Path, outdir: Path) -> list[Path]:
    """Write the document of every event contract in a catalog; the files written."""
    entries = documents.parse(catalog.read_bytes(), source=str(catalog)).get("contracts", [])
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in entries:
        if entry.get("kind") != "event":
            continue
        schema = documents.load_file(catalog.parent / entry["document"])
        version = str(entry["version"])
        major = int(version.split(".")[0])
        doc = document(entry["name"], version, major, schema, description=entry.get("description", ""),
                       owner=entry.get("owner", ""))
        path = outdir / f"{entry['name']}.v{major}.json"
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Write the AsyncAPI documents of the bundled catalog (or the one named) into docs/asyncapi."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(__file__).resolve().parent.parent
    catalog = Path(args[0]) if args else root / "contracts" / "catalog.yaml"
    outdir = Path(args[1]) if len(args) > 1 else root / "docs" / "asyncapi"
    for path in write_catalog(catalog, outdir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
