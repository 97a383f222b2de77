"""An operation added."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff

RULES = [
    Rule("api-operation-added", "INFO", "none", "operation added"),
]


def check(diff: ApiDiff) -> Iterator[Finding]:
    for name, *_ in diff.added:
        yield Finding("api-operation-added", name, "paths")
