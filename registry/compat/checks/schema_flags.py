"""nullable, readOnly, writeOnly, deprecated and default changes."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import schema_finding, show
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff
from registry.compat.views import nullable


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        old_null, new_null = nullable(pair.old, pair.old_30), nullable(pair.new, pair.new_30)
        if old_null != new_null:
            yield schema_finding(pair, "nullable-added" if new_null else "nullable-removed")
        for keyword, prefix in (("readOnly", "read-only"), ("writeOnly", "write-only")):
            old, new = pair.old.get(keyword) is True, pair.new.get(keyword) is True
            if old != new:
                yield schema_finding(pair, f"{prefix}-added" if new else f"{prefix}-removed")
        if pair.new.get("deprecated") is True and pair.old.get("deprecated") is not True:
            yield schema_finding(pair, "schema-deprecated")
        if "default" in pair.old and "default" not in pair.new:
            yield schema_finding(pair, "default-removed", old=show(pair.old["default"]))
        elif "default" in pair.old and pair.old["default"] != pair.new["default"]:
            yield schema_finding(pair, "default-changed", old=show(pair.old["default"]), new=show(pair.new["default"]))
        elif "default" not in pair.old and "default" in pair.new:
            yield schema_finding(pair, "default-added", new=show(pair.new["default"]))
