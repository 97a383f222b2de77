"""What the compatibility engine reports: changes with a stable rule id, a level and a direction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import msgspec

Level = Literal["ERR", "WARN", "INFO"]
Direction = Literal["request", "response", "none"]
Bump = Literal["major", "minor", "patch", "none"]
LEVELS: tuple[Level, ...] = ("INFO", "WARN", "ERR")  # in order of severity


class Finding(msgspec.Struct, frozen=True):
    """What a check yields: which rule fired, where, with the values its message needs."""

    rule_id: str
    operation: str
    location: str
    args: dict[str, Any] = {}


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """A finding with its rule's level, direction and rendered message (the JSON shape of `govgate diff`)."""

    id: str
    level: Level
    direction: Direction
    operation: str
    location: str
    message: str


class Rule(msgspec.Struct, frozen=True):
    """One entry of the rule table, declared in the module of the check that emits it."""

    id: str
    level: Level
    direction: Direction
    message: str
    forward: Level | None = None
    """Event rules only: the level in FORWARD mode (`level` is the BACKWARD one)."""
    why: str = ""
    """Why the rule has its level, where that is a judgement call (shown in docs/rules.md)."""


class Report(msgspec.Struct, kw_only=True):
    """The diff of two documents."""

    changes: list[Change]
    summary: dict[str, int]
    semver: dict[str, str | None]

    def at_or_above(self, level: Level) -> list[Change]:
        """Changes whose level is `level` or more severe."""
        floor = LEVELS.index(level)
        return [c for c in self.changes if LEVELS.index(c.level) >= floor]


def severity(level: Level) -> int:
    """Position of a level in INFO < WARN < ERR."""
    return LEVELS.index(level)


def findings(rule_id: str, operation: str, location: str, **args: Any) -> Iterator[Finding]:
    """A one-finding iterator, for checks that yield at most one."""
    yield Finding(rule_id, operation, location, args)
