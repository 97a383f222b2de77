"""The content model closed (additionalProperties: false) or opened."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import declared, per_context, schema_finding
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff
from registry.compat.views import closed

ADDITIONAL_PROPERTIES_CLOSED = per_context("additional properties are no longer allowed", {
    "request-body-additional-properties-closed": "ERR", "request-parameter-additional-properties-closed": "ERR",
    "response-body-additional-properties-closed": "INFO", "event-additional-properties-closed": ("ERR", "INFO")})
ADDITIONAL_PROPERTIES_OPENED = per_context("additional properties are now allowed", {
    "request-body-additional-properties-opened": "INFO", "request-parameter-additional-properties-opened": "INFO",
    "response-body-additional-properties-opened": "WARN", "event-additional-properties-opened": ("INFO", "WARN")})
RULES = declared(ADDITIONAL_PROPERTIES_CLOSED, ADDITIONAL_PROPERTIES_OPENED)


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        if not closed(pair.old) and closed(pair.new):
            yield from schema_finding(pair, ADDITIONAL_PROPERTIES_CLOSED)
        elif closed(pair.old) and not closed(pair.new):
            yield from schema_finding(pair, ADDITIONAL_PROPERTIES_OPENED)
