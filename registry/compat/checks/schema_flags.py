"""nullable, readOnly, writeOnly, deprecated and default changes."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import declared, per_context, schema_finding, show
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff
from registry.compat.views import nullable

NULLABLE_ADDED = per_context("null is now allowed", {
    "request-body-nullable-added": "INFO", "request-parameter-nullable-added": "INFO",
    "response-body-nullable-added": "ERR", "event-nullable-added": ("INFO", "ERR")})
NULLABLE_REMOVED = per_context("null is no longer allowed", {
    "request-body-nullable-removed": "ERR", "request-parameter-nullable-removed": "ERR",
    "response-body-nullable-removed": "INFO", "event-nullable-removed": ("ERR", "INFO")})
READ_ONLY_ADDED = per_context("became readOnly", {
    "request-body-read-only-added": "WARN", "request-parameter-read-only-added": "WARN",
    "response-body-read-only-added": "INFO", "event-read-only-added": ("WARN", "INFO")})
READ_ONLY_REMOVED = per_context("no longer readOnly", {
    "request-body-read-only-removed": "INFO", "request-parameter-read-only-removed": "INFO",
    "response-body-read-only-removed": "INFO", "event-read-only-removed": ("INFO", "INFO")})
WRITE_ONLY_ADDED = per_context("became writeOnly: no longer returned", {
    "request-body-write-only-added": "INFO", "request-parameter-write-only-added": "INFO",
    "response-body-write-only-added": "ERR", "event-write-only-added": ("INFO", "ERR")})
WRITE_ONLY_REMOVED = per_context("no longer writeOnly", {
    "request-body-write-only-removed": "INFO", "request-parameter-write-only-removed": "INFO",
    "response-body-write-only-removed": "INFO", "event-write-only-removed": ("INFO", "INFO")})
SCHEMA_DEPRECATED = per_context("deprecated", {
    "request-body-schema-deprecated": "INFO", "request-parameter-schema-deprecated": "INFO",
    "response-body-schema-deprecated": "INFO", "event-schema-deprecated": ("INFO", "INFO")})
DEFAULT_CHANGED = per_context("default changed from {old} to {new}", {
    "request-body-default-changed": "WARN", "request-parameter-default-changed": "WARN",
    "response-body-default-changed": "INFO", "event-default-changed": ("WARN", "INFO")})
DEFAULT_ADDED = per_context("default {new} added", {
    "request-body-default-added": "INFO", "request-parameter-default-added": "INFO",
    "response-body-default-added": "INFO", "event-default-added": ("INFO", "INFO")})
DEFAULT_REMOVED = per_context("default {old} removed", {
    "request-body-default-removed": "WARN", "request-parameter-default-removed": "WARN",
    "response-body-default-removed": "INFO", "event-default-removed": ("WARN", "INFO")})
RULES = declared(NULLABLE_ADDED, NULLABLE_REMOVED, READ_ONLY_ADDED, READ_ONLY_REMOVED, WRITE_ONLY_ADDED,
                 WRITE_ONLY_REMOVED, SCHEMA_DEPRECATED, DEFAULT_CHANGED, DEFAULT_ADDED, DEFAULT_REMOVED)

# keyword -> (its change when it becomes true, when it stops being true)
_FLAGS = {"readOnly": (READ_ONLY_ADDED, READ_ONLY_REMOVED), "writeOnly": (WRITE_ONLY_ADDED, WRITE_ONLY_REMOVED)}


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        old_null, new_null = nullable(pair.old, pair.old_30), nullable(pair.new, pair.new_30)
        if old_null != new_null:
            yield from schema_finding(pair, NULLABLE_ADDED if new_null else NULLABLE_REMOVED)
        for keyword, (added, removed) in _FLAGS.items():
            old, new = pair.old.get(keyword) is True, pair.new.get(keyword) is True
            if old != new:
                yield from schema_finding(pair, added if new else removed)
        if pair.new.get("deprecated") is True and pair.old.get("deprecated") is not True:
            yield from schema_finding(pair, SCHEMA_DEPRECATED)
        if "default" in pair.old and "default" not in pair.new:
            yield from schema_finding(pair, DEFAULT_REMOVED, old=show(pair.old["default"]))
        elif "default" in pair.old and pair.old["default"] != pair.new["default"]:
            yield from schema_finding(pair, DEFAULT_CHANGED, old=show(pair.old["default"]),
                                      new=show(pair.new["default"]))
        elif "default" not in pair.old and "default" in pair.new:
            yield from schema_finding(pair, DEFAULT_ADDED, new=show(pair.new["default"]))
