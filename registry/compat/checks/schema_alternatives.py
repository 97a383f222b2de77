"""oneOf / anyOf alternatives and allOf members added or removed."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import schema_finding
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff

_PREFIX = {"oneOf": "one-of-alternative", "anyOf": "any-of-alternative", "allOf": "all-of-member"}


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        for combinator, (removed, added) in pair.alternatives.items():
            prefix = _PREFIX[combinator]
            if removed:
                yield schema_finding(pair, f"{prefix}-removed", combinator=combinator,
                                     which=", ".join(f"#{i}" for i in removed))
            if added:
                yield schema_finding(pair, f"{prefix}-added", combinator=combinator,
                                     which=", ".join(f"#{j}" for j in added))
