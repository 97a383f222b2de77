"""A pattern or multipleOf constraint added, removed or changed; uniqueItems toggled."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import declared, per_context, schema_finding
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff

PATTERN_ADDED = per_context("pattern {new} added", {
    "request-body-pattern-added": "ERR", "request-parameter-pattern-added": "ERR",
    "response-body-pattern-added": "INFO", "event-pattern-added": ("ERR", "INFO")})
PATTERN_REMOVED = per_context("pattern {old} removed", {
    "request-body-pattern-removed": "INFO", "request-parameter-pattern-removed": "INFO",
    "response-body-pattern-removed": "WARN", "event-pattern-removed": ("INFO", "WARN")})
PATTERN_CHANGED = per_context("pattern changed from {old} to {new}", {
    "request-body-pattern-changed": "WARN", "request-parameter-pattern-changed": "WARN",
    "response-body-pattern-changed": "WARN", "event-pattern-changed": ("WARN", "WARN")})
MULTIPLE_OF_ADDED = per_context("multipleOf {new} added", {
    "request-body-multiple-of-added": "ERR", "request-parameter-multiple-of-added": "ERR",
    "response-body-multiple-of-added": "INFO", "event-multiple-of-added": ("ERR", "INFO")})
MULTIPLE_OF_REMOVED = per_context("multipleOf {old} removed", {
    "request-body-multiple-of-removed": "INFO", "request-parameter-multiple-of-removed": "INFO",
    "response-body-multiple-of-removed": "WARN", "event-multiple-of-removed": ("INFO", "WARN")})
MULTIPLE_OF_CHANGED = per_context("multipleOf changed from {old} to {new}", {
    "request-body-multiple-of-changed": "WARN", "request-parameter-multiple-of-changed": "WARN",
    "response-body-multiple-of-changed": "WARN", "event-multiple-of-changed": ("WARN", "WARN")})
UNIQUE_ITEMS_ADDED = per_context("items must now be unique", {
    "request-body-unique-items-added": "ERR", "request-parameter-unique-items-added": "ERR",
    "response-body-unique-items-added": "INFO", "event-unique-items-added": ("ERR", "INFO")})
UNIQUE_ITEMS_REMOVED = per_context("items may now repeat", {
    "request-body-unique-items-removed": "INFO", "request-parameter-unique-items-removed": "INFO",
    "response-body-unique-items-removed": "WARN", "event-unique-items-removed": ("INFO", "WARN")})
RULES = declared(PATTERN_ADDED, PATTERN_REMOVED, PATTERN_CHANGED, MULTIPLE_OF_ADDED, MULTIPLE_OF_REMOVED,
                 MULTIPLE_OF_CHANGED, UNIQUE_ITEMS_ADDED, UNIQUE_ITEMS_REMOVED)

# keyword -> its change when added, removed, changed
_CONSTRAINTS = {"pattern": (PATTERN_ADDED, PATTERN_REMOVED, PATTERN_CHANGED),
                "multipleOf": (MULTIPLE_OF_ADDED, MULTIPLE_OF_REMOVED, MULTIPLE_OF_CHANGED)}


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        for keyword, (added, removed, changed) in _CONSTRAINTS.items():
            old, new = pair.old.get(keyword), pair.new.get(keyword)
            if old == new:
                continue
            if old is None:
                yield from schema_finding(pair, added, new=new)
            elif new is None:
                yield from schema_finding(pair, removed, old=old)
            else:
                yield from schema_finding(pair, changed, old=old, new=new)
        old_unique, new_unique = pair.old.get("uniqueItems") is True, pair.new.get("uniqueItems") is True
        if old_unique != new_unique:
            yield from schema_finding(pair, UNIQUE_ITEMS_ADDED if new_unique else UNIQUE_ITEMS_REMOVED)
