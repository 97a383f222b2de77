"""A schema's type or format changed."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import schema_finding, show
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff
from registry.compat.views import types

# a value of the key type is also a value of each type in its set
_WIDER = {"integer": {"number"}}


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        old, new = types(pair.old), types(pair.new)
        if old != new and old:
            widened = not new or all(t in new or _WIDER.get(t, set()) & new for t in old)
            narrowed = bool(new) and all(t in old or _WIDER.get(t, set()) & old for t in new)
            aspect = "type-generalized" if widened else "type-narrowed" if narrowed else "type-changed"
            yield schema_finding(pair, aspect, old=show(old), new=show(new) if new else "any")
        elif not old and new:
            yield schema_finding(pair, "type-changed", old="any", new=show(new))
        old_format, new_format = pair.old.get("format"), pair.new.get("format")
        if old_format != new_format:
            if old_format is None:
                yield schema_finding(pair, "format-added", new=new_format)
            elif new_format is None:
                yield schema_finding(pair, "format-removed", old=old_format)
            else:
                yield schema_finding(pair, "format-changed", old=old_format, new=new_format)
