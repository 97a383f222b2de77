"""The semver verdict: the smallest bump a set of changes requires, and the bump proposed."""

from __future__ import annotations

import re
from collections.abc import Iterable

from registry.compat.checks.documentation import DOCUMENTATION_CHANGED
from registry.compat.model import Bump, Change, Rule

# the registry's grammar of versions (registry.model.SemVer); compat keeps its own copy to stay free of the registry
_SEMVER = re.compile(
    r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?$"
)
BUMP_TOO_SMALL = Rule("semver-bump-too-small", "ERR", "none",
                      "version {proposed} is a {actual} bump; the changes need a {required} bump")
RULES = [BUMP_TOO_SMALL]
BUMPS: tuple[Bump, ...] = ("none", "patch", "minor", "major")
PATCH_ONLY = frozenset({DOCUMENTATION_CHANGED.id})


def required_bump(changes: Iterable[Change]) -> Bump:
    """ERR needs a major bump; any other change to the contract a minor one; documentation a patch."""
    needed: Bump = "none"
    for change in changes:
        bump: Bump = "major" if change.level == "ERR" else "patch" if change.id in PATCH_ONLY else "minor"
        if BUMPS.index(bump) > BUMPS.index(needed):
            needed = bump
    return needed


def proposed_bump(old: str | None, new: str | None) -> Bump | None:
    """The bump from one version string to another; None when either is not semver or new is not newer."""
    before, after = _parse(str(old)), _parse(str(new))
    if before is None or after is None:
        return None
    if after <= before:
        return "none"
    if after[0] != before[0]:
        return "major"
    if after[1] != before[1]:
        return "minor"
    return "patch"


def _parse(text: str) -> tuple[int, int, int, bool, str] | None:
    """(major, minor, patch, is_release, prerelease): ordered as registry.model.SemVer orders versions."""
    match = _SEMVER.match(text)
    if not match:
        return None
    major, minor, patch, pre = match.groups()
    return int(major), int(minor), int(patch), pre is None, pre or ""


def at_least(actual: Bump, required: Bump) -> bool:
    """Whether `actual` is as large a bump as `required`."""
    return BUMPS.index(actual) >= BUMPS.index(required)
