"""A discriminator added, removed, or its property or mapping changed."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import declared, per_context, schema_finding
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff

DISCRIMINATOR_ADDED = per_context("discriminator on {property} added", {
    "request-body-discriminator-added": "WARN", "request-parameter-discriminator-added": "WARN",
    "response-body-discriminator-added": "WARN", "event-discriminator-added": ("WARN", "WARN")})
DISCRIMINATOR_REMOVED = per_context("discriminator on {property} removed", {
    "request-body-discriminator-removed": "WARN", "request-parameter-discriminator-removed": "WARN",
    "response-body-discriminator-removed": "WARN", "event-discriminator-removed": ("WARN", "WARN")})
DISCRIMINATOR_PROPERTY_CHANGED = per_context("discriminator property changed from {old} to {new}", {
    "request-body-discriminator-property-changed": "ERR", "request-parameter-discriminator-property-changed": "ERR",
    "response-body-discriminator-property-changed": "ERR", "event-discriminator-property-changed": ("ERR", "ERR")})
DISCRIMINATOR_MAPPING_CHANGED = per_context("discriminator mapping of {values} removed or retargeted", {
    "request-body-discriminator-mapping-changed": "ERR", "request-parameter-discriminator-mapping-changed": "ERR",
    "response-body-discriminator-mapping-changed": "ERR", "event-discriminator-mapping-changed": ("ERR", "ERR")})
DISCRIMINATOR_MAPPING_ADDED = per_context("discriminator mapping of {values} added", {
    "request-body-discriminator-mapping-added": "INFO", "request-parameter-discriminator-mapping-added": "INFO",
    "response-body-discriminator-mapping-added": "WARN", "event-discriminator-mapping-added": ("INFO", "WARN")})
RULES = declared(DISCRIMINATOR_ADDED, DISCRIMINATOR_REMOVED, DISCRIMINATOR_PROPERTY_CHANGED,
                 DISCRIMINATOR_MAPPING_CHANGED, DISCRIMINATOR_MAPPING_ADDED)


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        old, new = pair.old.get("discriminator"), pair.new.get("discriminator")
        if not isinstance(old, dict) and isinstance(new, dict):
            yield from schema_finding(pair, DISCRIMINATOR_ADDED, property=new.get("propertyName"))
        elif isinstance(old, dict) and not isinstance(new, dict):
            yield from schema_finding(pair, DISCRIMINATOR_REMOVED, property=old.get("propertyName"))
        elif isinstance(old, dict) and isinstance(new, dict):
            if old.get("propertyName") != new.get("propertyName"):
                yield from schema_finding(pair, DISCRIMINATOR_PROPERTY_CHANGED, old=old.get("propertyName"),
                                          new=new.get("propertyName"))
            old_map, new_map = old.get("mapping") or {}, new.get("mapping") or {}
            gone = sorted(k for k in old_map if k not in new_map)
            moved = sorted(k for k in old_map if k in new_map and not _same_target(diff, old_map[k], new_map[k]))
            if gone or moved:
                yield from schema_finding(pair, DISCRIMINATOR_MAPPING_CHANGED, values=", ".join(gone + moved))
            added = sorted(k for k in new_map if k not in old_map)
            if added:
                yield from schema_finding(pair, DISCRIMINATOR_MAPPING_ADDED, values=", ".join(added))


def _same_target(diff: ApiDiff, old_ref: str, new_ref: str) -> bool:
    return diff.same({"$ref": old_ref} if old_ref.startswith("#") else {},
                     {"$ref": new_ref} if new_ref.startswith("#") else {})
