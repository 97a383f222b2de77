"""A discriminator added, removed, or its property or mapping changed."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import schema_finding
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        old, new = pair.old.get("discriminator"), pair.new.get("discriminator")
        if not isinstance(old, dict) and isinstance(new, dict):
            yield schema_finding(pair, "discriminator-added", property=new.get("propertyName"))
        elif isinstance(old, dict) and not isinstance(new, dict):
            yield schema_finding(pair, "discriminator-removed", property=old.get("propertyName"))
        elif isinstance(old, dict) and isinstance(new, dict):
            if old.get("propertyName") != new.get("propertyName"):
                yield schema_finding(pair, "discriminator-property-changed", old=old.get("propertyName"),
                                     new=new.get("propertyName"))
            old_map, new_map = old.get("mapping") or {}, new.get("mapping") or {}
            gone = sorted(k for k in old_map if k not in new_map)
            moved = sorted(k for k in old_map if k in new_map and not _same_target(diff, old_map[k], new_map[k]))
            if gone or moved:
                yield schema_finding(pair, "discriminator-mapping-changed", values=", ".join(gone + moved))
            added = sorted(k for k in new_map if k not in old_map)
            if added:
                yield schema_finding(pair, "discriminator-mapping-added", values=", ".join(added))


def _same_target(diff: ApiDiff, old_ref: str, new_ref: str) -> bool:
    return diff.same({"$ref": old_ref} if old_ref.startswith("#") else {},
                     {"$ref": new_ref} if new_ref.startswith("#") else {})
