"""Deprecation and sunset bookkeeping of operations."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks.operation_removed import sunset
from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff

RULES = [
    Rule("api-operation-deprecated", "INFO", "none", "operation deprecated"),
    Rule("api-operation-deprecated-without-sunset", "WARN", "none", "operation deprecated without an x-sunset date"),
    Rule("api-operation-deprecation-reverted", "INFO", "none", "operation no longer deprecated"),
    Rule("api-sunset-date-brought-forward", "WARN", "none", "sunset date brought forward from {old} to {new}"),
    Rule("api-sunset-date-postponed", "INFO", "none", "sunset date postponed from {old} to {new}"),
]


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.operations:
        was, now = pair.old.get("deprecated") is True, pair.new.get("deprecated") is True
        old_sunset, new_sunset = sunset(pair.old), sunset(pair.new)
        if now and not was:
            yield Finding("api-operation-deprecated", pair.key, "deprecated")
            if new_sunset is None:
                yield Finding("api-operation-deprecated-without-sunset", pair.key, "x-sunset")
        elif was and not now:
            yield Finding("api-operation-deprecation-reverted", pair.key, "deprecated")
        if old_sunset and new_sunset and new_sunset < old_sunset:
            yield Finding("api-sunset-date-brought-forward", pair.key, "x-sunset",
                          {"old": old_sunset.isoformat(), "new": new_sunset.isoformat()})
        elif old_sunset and new_sunset and new_sunset > old_sunset:
            yield Finding("api-sunset-date-postponed", pair.key, "x-sunset",
                          {"old": old_sunset.isoformat(), "new": new_sunset.isoformat()})
