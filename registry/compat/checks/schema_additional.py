"""The content model closed (additionalProperties: false) or opened."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import schema_finding
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff
from registry.compat.views import closed


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        if not closed(pair.old) and closed(pair.new):
            yield schema_finding(pair, "additional-properties-closed")
        elif closed(pair.old) and not closed(pair.new):
            yield schema_finding(pair, "additional-properties-opened")
