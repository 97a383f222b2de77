"""One compatibility check per module. Each declares its rules (`RULES`) and yields findings of them.

A rule id is written out in full where it is declared, so that an id read in a CI report greps to
its check. Schema rules exist once per context a schema sits in: `per_context` declares the ids of
one schema change for each context, and `schema_finding` picks the one of the pair's context.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from registry.compat.model import Direction, Finding, Level, Rule
from registry.compat.structure import SchemaPair

_DIRECTIONS: dict[str, Direction] = {"request-body": "request", "request-parameter": "request",
                                     "response-body": "response", "event": "none"}


def per_context(message: str, levels: dict[str, Level | tuple[Level, Level]], why: str = "") -> dict[str, Rule]:
    """One schema change's rules keyed by context, from rule id -> level ((BACKWARD, FORWARD) for `event-` ids).

    The context is the prefix the id starts with; a context without an id does not report the change.
    """
    rules = {}
    for rule_id, level in levels.items():
        context = next(c for c in _DIRECTIONS if rule_id.startswith(f"{c}-"))
        backward, forward = level if isinstance(level, tuple) else (level, None)
        rules[context] = Rule(rule_id, backward, _DIRECTIONS[context], message, forward, why)
    return rules


def declared(*changes: dict[str, Rule]) -> list[Rule]:
    """A schema check's rules for the central table, change after change."""
    return [rule for change in changes for rule in change.values()]


def schema_finding(pair: SchemaPair, change: dict[str, Rule], **args: Any) -> Iterator[Finding]:
    """The finding of `change` in the pair's context, if the change is a rule there."""
    rule = change.get(pair.context)
    if rule is not None:
        yield from at_places(pair, rule.id, **args)


def at_places(pair: SchemaPair, rule_id: str, **args: Any) -> Iterator[Finding]:
    """One finding of a rule at every place the pair sits (the pair was compared once)."""
    for operation, location in pair.places:
        yield Finding(rule_id, operation, location, args)


def show(value: Any) -> str:
    """A short, stable rendering of a value for messages."""
    if isinstance(value, (set, frozenset)):
        value = sorted(value, key=repr)
    text = json.dumps(value, ensure_ascii=False, default=str)  # JSON, so true and "true" read differently
    return text if len(text) <= 80 else text[:77] + "..."
