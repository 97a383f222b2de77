"""Event schema (JSON Schema 2020-12 / draft-07) compatibility with Confluent's modes.

BACKWARD: consumers on the new schema read data written with the old one (the new schema
is the reader, like a request: tightening breaks). FORWARD: consumers on the old schema
read data written with the new one (like a response: loosening breaks). FULL: both.
The *_TRANSITIVE modes check against every earlier version, not only the latest. NONE
reports changes without failing anything.

Properties added or removed are judged by the content model they change, as Confluent does
(checks/event_content_model.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

from registry.compat import engine
from registry.compat.checks import event_content_model
from registry.compat.checks.event_content_model import RequiredWithDefault
from registry.compat.model import Finding, Level, Report, Rule, severity
from registry.compat.structure import ApiDiff, Limits

Mode = Literal["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE",
               "NONE"]
MODES: tuple[str, ...] = Mode.__args__  # type: ignore[attr-defined]


class EventDiff(ApiDiff):
    """One schema pair tree, in the `event` context."""

    def __init__(self, old: dict[str, Any], new: dict[str, Any], limits: Limits = Limits()) -> None:
        super().__init__({"openapi": "3.1.0", "paths": {}}, {"openapi": "3.1.0", "paths": {}}, limits=limits)
        self.old.root, self.new.root = old, new
        self.pair_schemas("event", "", "data", old, new)


def level_for(mode: str) -> Any:
    """How a rule's level reads in a mode: BACKWARD its level, FORWARD its forward level, FULL the worse."""

    def level(rule: Rule) -> Level:
        backward, forward = rule.level, rule.forward or rule.level
        if mode == "NONE":
            return "INFO"
        if mode.startswith("BACKWARD"):
            return backward
        if mode.startswith("FORWARD"):
            return forward
        return backward if severity(backward) >= severity(forward) else forward

    return level


def _findings(olds: Sequence[dict[str, Any]], new: dict[str, Any], required_with_default: RequiredWithDefault,
              limits: Limits) -> Iterator[Finding]:
    for old in olds:
        diff = EventDiff(old, new, limits)
        yield from engine.run_checks(engine.CHECKS, diff)
        yield from engine.run_checks([event_content_model.check], diff, required_with_default=required_with_default)


def diff_event_schemas(history: Sequence[dict[str, Any]], new: dict[str, Any], *, mode: str = "BACKWARD",
                       required_with_default: RequiredWithDefault = "compatible",
                       old_version: str | None = None, new_version: str | None = None,
                       minor_bump_level: Level = "INFO", limits: Limits = Limits()) -> Report:
    """Compare `new` with the latest of `history` (or every one of them, in a transitive mode).

    `mode` is one of Confluent's names, in any case. Raises DiffTooLarge past `limits`.
    """
    mode = mode.upper()
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    olds = history if mode.endswith("_TRANSITIVE") else history[-1:]
    return engine.build_report(_findings(olds, new, required_with_default, limits), old_version, new_version, level_of=level_for(mode),
                               minor_bump_level=minor_bump_level, limits=limits)

