"""Enum values added or removed, or an enum constraint added or dropped."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import schema_finding, show
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff
from registry.compat.views import enum


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        old, new = enum(pair.old), enum(pair.new)
        if old is None and new is not None:
            yield schema_finding(pair, "enum-added", values=show(new))
        elif old is not None and new is None:
            yield schema_finding(pair, "enum-removed", values=show(old))
        elif old is not None and new is not None:
            removed = [v for v in old if v not in new]
            added = [v for v in new if v not in old]
            if removed:
                yield schema_finding(pair, "enum-value-removed", values=show(removed))
            if added:
                yield schema_finding(pair, "enum-value-added", values=show(added))
