"""Enum values added or removed, or an enum constraint added or dropped."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import declared, per_context, schema_finding, show
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff
from registry.compat.views import enum

ENUM_VALUE_REMOVED = per_context("enum values {values} removed", {
    "request-body-enum-value-removed": "ERR", "request-parameter-enum-value-removed": "ERR",
    "response-body-enum-value-removed": "INFO", "event-enum-value-removed": ("ERR", "INFO")})
ENUM_VALUE_ADDED = per_context("enum values {values} added", {
    "request-body-enum-value-added": "INFO", "request-parameter-enum-value-added": "INFO",
    "response-body-enum-value-added": "WARN", "event-enum-value-added": ("INFO", "ERR")},
    why="A response value a client does not know may break its switch statement, but well-written clients "
        "have a default branch: WARN. Events under FORWARD are ERR: a consumer on the old schema validates "
        "and rejects data written with the new value, which is what forward compatibility forbids "
        "(Confluent's semantics). There is no lenient switch: a consumer that tolerates unknown values should "
        "not list them in an enum, and NONE mode remains for a stream that accepts anything.")
ENUM_ADDED = per_context("values restricted to the enum {values}", {
    "request-body-enum-added": "ERR", "request-parameter-enum-added": "ERR",
    "response-body-enum-added": "INFO", "event-enum-added": ("ERR", "INFO")})
ENUM_REMOVED = per_context("enum {values} no longer restricts the values", {
    "request-body-enum-removed": "INFO", "request-parameter-enum-removed": "INFO",
    "response-body-enum-removed": "WARN", "event-enum-removed": ("INFO", "ERR")},
    why="The enum as a whole dropped: as for a value added, old consumers of an event reject the new values.")
RULES = declared(ENUM_VALUE_REMOVED, ENUM_VALUE_ADDED, ENUM_ADDED, ENUM_REMOVED)


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        old, new = enum(pair.old), enum(pair.new)
        if old is None and new is not None:
            yield from schema_finding(pair, ENUM_ADDED, values=show(new))
        elif old is not None and new is None:
            yield from schema_finding(pair, ENUM_REMOVED, values=show(old))
        elif old is not None and new is not None:
            removed = [v for v in old if v not in new]
            added = [v for v in new if v not in old]
            if removed:
                yield from schema_finding(pair, ENUM_VALUE_REMOVED, values=show(removed))
            if added:
                yield from schema_finding(pair, ENUM_VALUE_ADDED, values=show(added))
