"""Properties added or removed, made required or optional.

Event schemas have no rule for a property added or removed here: whether that breaks depends on
the content model, which checks/event_content_model.py judges.
"""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import declared, per_context, schema_finding
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff, Document, SchemaPair
from registry.compat.views import properties, required

REQUIRED_PROPERTY_ADDED = per_context("required property {name} added", {
    "request-body-required-property-added": "ERR", "request-parameter-required-property-added": "ERR",
    "response-body-required-property-added": "INFO"})
OPTIONAL_PROPERTY_ADDED = per_context("optional property {name} added", {
    "request-body-optional-property-added": "INFO", "request-parameter-optional-property-added": "INFO",
    "response-body-optional-property-added": "INFO"})
REQUIRED_PROPERTY_REMOVED = per_context("required property {name} removed", {
    "request-body-required-property-removed": "WARN", "request-parameter-required-property-removed": "WARN",
    "response-body-required-property-removed": "ERR"})
OPTIONAL_PROPERTY_REMOVED = per_context("optional property {name} removed", {
    "request-body-optional-property-removed": "WARN", "request-parameter-optional-property-removed": "WARN",
    "response-body-optional-property-removed": "WARN"},
    why="A response may always omit an optional property, so a client that handles its absence keeps working; "
        "but a renamed field looks exactly like this, and clients read what they see, so it is a warning. A "
        "request that still sends the property is accepted by an open schema and refused by a closed one (the "
        "closing is its own ERR rule). When the old examples showed the property, it is "
        "`response-body-shown-property-removed` (ERR).")
SHOWN_PROPERTY_REMOVED = per_context("optional property {name} removed; the old examples showed it", {
    "response-body-shown-property-removed": "ERR"},
    why="Clients are written against the examples: a property every documented response carried is read as "
        "always present, whatever `required` says, so removing (or renaming) it breaks them.")
PROPERTY_BECAME_REQUIRED = per_context("property {name} became required", {
    "request-body-property-became-required": "ERR", "request-parameter-property-became-required": "ERR",
    "response-body-property-became-required": "INFO", "event-property-became-required": ("ERR", "INFO")})
PROPERTY_BECAME_OPTIONAL = per_context("property {name} became optional", {
    "request-body-property-became-optional": "INFO", "request-parameter-property-became-optional": "INFO",
    "response-body-property-became-optional": "ERR", "event-property-became-optional": ("INFO", "ERR")})
RULES = declared(REQUIRED_PROPERTY_ADDED, OPTIONAL_PROPERTY_ADDED, REQUIRED_PROPERTY_REMOVED,
                 OPTIONAL_PROPERTY_REMOVED, SHOWN_PROPERTY_REMOVED, PROPERTY_BECAME_REQUIRED, PROPERTY_BECAME_OPTIONAL)


# a property a side never carries: the server assigns readOnly ones, and never returns writeOnly ones
_NOT_CARRIED = {"request-body": "readOnly", "request-parameter": "readOnly", "response-body": "writeOnly"}


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        old_props, new_props = _carried(diff, pair, pair.old, diff.old), _carried(diff, pair, pair.new, diff.new)
        old_required, new_required = required(pair.old), required(pair.new)
        for name in new_props.keys() - old_props.keys():
            change = REQUIRED_PROPERTY_ADDED if name in new_required else OPTIONAL_PROPERTY_ADDED
            yield from schema_finding(pair, change, name=name)
        for name in old_props.keys() - new_props.keys():
            change = REQUIRED_PROPERTY_REMOVED if name in old_required else \
                SHOWN_PROPERTY_REMOVED if name in pair.shown and pair.context == "response-body" else \
                OPTIONAL_PROPERTY_REMOVED
            yield from schema_finding(pair, change, name=name)
        for name in sorted(old_props.keys() & new_props.keys()):
            if name in new_required and name not in old_required:
                yield from schema_finding(pair, PROPERTY_BECAME_REQUIRED, name=name)
            elif name in old_required and name not in new_required:
                yield from schema_finding(pair, PROPERTY_BECAME_OPTIONAL, name=name)


def _carried(diff: ApiDiff, pair: SchemaPair, schema: dict, document: Document) -> dict:
    """The properties the pair's direction carries: readOnly ones are not in requests, writeOnly not in responses."""
    flag = _NOT_CARRIED.get(pair.context)
    props = properties(schema)
    if flag is None:
        return props
    return {name: prop for name, prop in props.items()
            if not (isinstance(target := document.deref(prop), dict) and target.get(flag) is True)}
