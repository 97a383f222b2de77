"""Properties added or removed, made required or optional."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import schema_finding
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff
from registry.compat.views import properties, required


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        old_props, new_props = properties(pair.old), properties(pair.new)
        old_required, new_required = required(pair.old), required(pair.new)
        for name in new_props.keys() - old_props.keys():
            aspect = "required-property-added" if name in new_required else "optional-property-added"
            yield schema_finding(pair, aspect, name=name)
        for name in old_props.keys() - new_props.keys():
            aspect = "required-property-removed" if name in old_required else "optional-property-removed"
            yield schema_finding(pair, aspect, name=name)
        for name in sorted(old_props.keys() & new_props.keys()):
            if name in new_required and name not in old_required:
                yield schema_finding(pair, "property-became-required", name=name)
            elif name in old_required and name not in new_required:
                yield schema_finding(pair, "property-became-optional", name=name)
