"""A pattern or multipleOf constraint added, removed or changed; uniqueItems toggled."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import schema_finding
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        for keyword, prefix in (("pattern", "pattern"), ("multipleOf", "multiple-of")):
            old, new = pair.old.get(keyword), pair.new.get(keyword)
            if old == new:
                continue
            if old is None:
                yield schema_finding(pair, f"{prefix}-added", new=new)
            elif new is None:
                yield schema_finding(pair, f"{prefix}-removed", old=old)
            else:
                yield schema_finding(pair, f"{prefix}-changed", old=old, new=new)
        old_unique, new_unique = pair.old.get("uniqueItems") is True, pair.new.get("uniqueItems") is True
        if old_unique != new_unique:
            yield schema_finding(pair, "unique-items-added" if new_unique else "unique-items-removed")

