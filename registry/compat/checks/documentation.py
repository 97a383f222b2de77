"""Only documentation changed: descriptions, summaries, examples, titles, unknown extensions."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff

DOCUMENTATION_CHANGED = Rule("documentation-changed", "INFO", "none", "only documentation changed")
RULES = [DOCUMENTATION_CHANGED]


def check(diff: ApiDiff) -> Iterator[Finding]:
    old, new = dict(diff.old.root), dict(diff.new.root)
    old_info, new_info = dict(old.pop("info", {}) or {}), dict(new.pop("info", {}) or {})
    old_info.pop("version", None)
    new_info.pop("version", None)
    if (old != new or old_info != new_info) and diff.same(old, new):
        yield Finding("documentation-changed", "", "document")
