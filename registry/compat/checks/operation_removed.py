"""An operation removed: breaking unless it was deprecated and its sunset date has passed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff

RULES = [
    Rule("api-operation-removed-without-deprecation", "ERR", "none",
         "operation removed without being deprecated first"),
    Rule("api-operation-removed-before-sunset", "ERR", "none", "operation removed before its sunset date ({sunset})"),
    Rule("api-operation-removed-after-sunset", "INFO", "none", "operation removed after its sunset date ({sunset})"),
]


def sunset(operation: dict) -> date | None:
    """The operation's `x-sunset` date (RFC 8594 meaning), when it declares a valid one."""
    value = operation.get("x-sunset")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def check(diff: ApiDiff) -> Iterator[Finding]:
    for name, _method, _path, operation, _item in diff.removed:
        when = sunset(operation)
        if operation.get("deprecated") is not True:
            yield Finding("api-operation-removed-without-deprecation", name, "paths")
        elif when is None or when > diff.today:
            yield Finding("api-operation-removed-before-sunset", name, "paths",
                          {"sunset": when.isoformat() if when else "none was declared"})
        else:
            yield Finding("api-operation-removed-after-sunset", name, "paths", {"sunset": when.isoformat()})
