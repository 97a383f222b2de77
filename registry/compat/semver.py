"""The semver verdict: the smallest bump a set of changes requires, and the bump proposed."""

from __future__ import annotations

from collections.abc import Iterable

from registry.compat.model import Bump, Change
from registry.errors import InvalidRequest
from registry.model import SemVer

BUMPS: tuple[Bump, ...] = ("none", "patch", "minor", "major")
PATCH_ONLY = frozenset({"documentation-changed"})


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
    try:
        before, after = SemVer.parse(str(old)), SemVer.parse(str(new))
    except InvalidRequest:
        return None
    if after <= before:
        return "none"
    if after.major != before.major:
        return "major"
    if after.minor != before.minor:
        return "minor"
    return "patch"


def at_least(actual: Bump, required: Bump) -> bool:
    """Whether `actual` is as large a bump as `required`."""
    return BUMPS.index(actual) >= BUMPS.index(required)
