"""A schema's type or format changed."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import declared, per_context, schema_finding, show
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff
from registry.compat.views import implied_types

TYPE_CHANGED = per_context("type changed from {old} to {new}", {
    "request-body-type-changed": "ERR", "request-parameter-type-changed": "ERR",
    "response-body-type-changed": "ERR", "event-type-changed": ("ERR", "ERR")})
TYPE_GENERALIZED = per_context("type widened from {old} to {new}", {
    "request-body-type-generalized": "INFO", "request-parameter-type-generalized": "INFO",
    "response-body-type-generalized": "ERR", "event-type-generalized": ("INFO", "ERR")})
TYPE_NARROWED = per_context("type narrowed from {old} to {new}", {
    "request-body-type-narrowed": "ERR", "request-parameter-type-narrowed": "ERR",
    "response-body-type-narrowed": "INFO", "event-type-narrowed": ("ERR", "INFO")},
    why="A schema without `type` gaining one is a narrowing from any type. A schema whose keywords only apply "
        "to one type (`properties`, `required` for objects; `items` for arrays; enum values all of one type) "
        "is read as that type, so adding `type: object` beside `properties` is no change at all.")
FORMAT_ADDED = per_context("format {new} added", {
    "request-body-format-added": "WARN", "request-parameter-format-added": "WARN",
    "response-body-format-added": "INFO", "event-format-added": ("WARN", "INFO")})
FORMAT_REMOVED = per_context("format {old} removed", {
    "request-body-format-removed": "INFO", "request-parameter-format-removed": "INFO",
    "response-body-format-removed": "WARN", "event-format-removed": ("INFO", "WARN")})
FORMAT_CHANGED = per_context("format changed from {old} to {new}", {
    "request-body-format-changed": "ERR", "request-parameter-format-changed": "ERR",
    "response-body-format-changed": "ERR", "event-format-changed": ("ERR", "ERR")})
RULES = declared(TYPE_CHANGED, TYPE_GENERALIZED, TYPE_NARROWED, FORMAT_ADDED, FORMAT_REMOVED, FORMAT_CHANGED)


# a value of the key type is also a value of each type in its set; a parameter is text on the wire, so
# any of its scalar values is also a string
_WIDER = {"integer": {"number"}}
_WIDER_IN_PARAMETERS = {"integer": {"number", "string"}, "number": {"string"}, "boolean": {"string"}}


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        # a schema without `type` whose keywords only apply to one type is read as that type: adding
        # `type: object` next to `properties` changes nothing in practice
        old, new = implied_types(pair.old), implied_types(pair.new)
        wider = _WIDER_IN_PARAMETERS if pair.context == "request-parameter" else _WIDER
        if old != new:
            widened = not new or bool(old) and all(t in new or wider.get(t, set()) & new for t in old)
            narrowed = not old or bool(new) and all(t in old or wider.get(t, set()) & old for t in new)
            change = TYPE_GENERALIZED if widened else TYPE_NARROWED if narrowed else TYPE_CHANGED
            yield from schema_finding(pair, change, old=show(old) if old else "any", new=show(new) if new else "any")
        old_format, new_format = pair.old.get("format"), pair.new.get("format")
        if old_format != new_format:
            if old_format is None:
                yield from schema_finding(pair, FORMAT_ADDED, new=new_format)
            elif new_format is None:
                yield from schema_finding(pair, FORMAT_REMOVED, old=old_format)
            else:
                yield from schema_finding(pair, FORMAT_CHANGED, old=old_format, new=new_format)
