"""An operationId changed: generated clients rename their methods."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff

RULES = [
    Rule("api-operation-id-changed", "WARN", "none", "operationId changed from {old} to {new}"),
    Rule("api-operation-id-removed", "WARN", "none", "operationId {old} removed"),
]


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.operations:
        old, new = pair.old.get("operationId"), pair.new.get("operationId")
        if old and new and old != new:
            yield Finding("api-operation-id-changed", pair.key, "operationId", {"old": old, "new": new})
        elif old and not new:
            yield Finding("api-operation-id-removed", pair.key, "operationId", {"old": old})
