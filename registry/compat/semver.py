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
                      "version {proposed} is a {actual} bump; the changes need a {required} bump",
                      why="Fires only for a breaking change (an ERR finding) released without a major bump: "
                          "clients pinned to the major would receive it. The registry refuses such a proposal.")
MINOR_BUMP_MISSING = Rule("semver-minor-bump-missing", "INFO", "none",
                          "version {proposed} is a {actual} bump; compatible additions suggest a {required} bump",
                          why="A compatible change (an operation or optional field added) released as a patch, "
                              "or under the same version, breaks nobody; the version is bookkeeping. INFO by "
                              "default so that `--fail-on` decides on compatibility; `--minor-bump-level` (CLI) "
                              "or `minor_bump_level` raises it. Documentation-only changes need no bump at all.")
RULES = [BUMP_TOO_SMALL, MINOR_BUMP_MISSING]
BUMPS: tuple[Bump, ...] = ("none", "patch", "minor", "major")
NO_BUMP = frozenset({DOCUMENTATION_CHANGED.id})


def required_bump(changes: Iterable[Change]) -> Bump:
    """ERR needs a major bump; any other change to the contract a minor one; documentation none."""
    needed: Bump = "none"
    for change in changes:
        bump: Bump = "major" if change.level == "ERR" else "none" if change.id in NO_BUMP else "minor"
        if BUMPS.index(bump) > BUMPS.index(needed):
            needed = bump
    return needed


def verdict(required: Bump, proposed: Bump | None) -> Rule | None:
    """The rule a proposed bump breaks: too small for a breaking change (ERR), or a missing minor bump (INFO).

    Only a missing major bump is an error: a client is broken only by a breaking change released
    as if it were compatible. A compatible addition released as a patch (or under the same
    version) breaks nobody; it is reported at a level the caller chooses (INFO by default).
    """
    if proposed is None or at_least(proposed, required):
        return None
    return BUMP_TOO_SMALL if required == "major" else MINOR_BUMP_MISSING


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
