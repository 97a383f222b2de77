"""Event schema (JSON Schema 2020-12 / draft-07) compatibility with Confluent's modes.

BACKWARD: consumers on the new schema read data written with the old one (the new schema
is the reader, like a request: tightening breaks). FORWARD: consumers on the old schema
read data written with the new one (like a response: loosening breaks). FULL: both.
The *_TRANSITIVE modes check against every earlier version, not only the latest. NONE
reports changes without failing anything.

Content models follow Confluent: a property added to an open model (additional properties
allowed) breaks BACKWARD, since old data may carry that name with any value; a property
removed from a closed model breaks BACKWARD, since old data still carries it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

from registry.compat import engine
from registry.compat.model import Finding, Level, Report, Rule, severity
from registry.compat.structure import ApiDiff
from registry.compat.views import closed, properties, required

Mode = Literal["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE",
               "NONE"]
MODES: tuple[str, ...] = Mode.__args__  # type: ignore[attr-defined]
RequiredWithDefault = Literal["compatible", "breaking"]
# the property rules of the request/response contexts are replaced by content-model-aware ones
_REPLACED = {"required-property-added", "optional-property-added", "required-property-removed",
             "optional-property-removed"}


class EventDiff(ApiDiff):
    """One schema pair tree, in the `event` context."""

    def __init__(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        super().__init__({"openapi": "3.1.0", "paths": {}}, {"openapi": "3.1.0", "paths": {}})
        self.old.root, self.new.root = old, new
        self.schema_pairs = self.pair_schemas("event", "", "data", old, new)


def content_model(diff: EventDiff, *, required_with_default: RequiredWithDefault) -> Iterator[Finding]:
    """The event-only property rules."""
    for pair in diff.schema_pairs:
        old_props, new_props = properties(pair.old), properties(pair.new)
        for name in sorted(new_props.keys() - old_props.keys()):
            model = "closed-model" if closed(pair.old) else "open-model"
            if name in required(pair.new):
                has_default = isinstance(new_props[name], dict) and "default" in new_props[name]
                kind = "required-property-with-default" if has_default and required_with_default == "compatible" \
                    else "required-property"
            else:
                kind = "optional-property"
            yield Finding(f"event-{kind}-added-{model}", "", pair.location, {"name": name})
        for name in sorted(old_props.keys() - new_props.keys()):
            if not closed(pair.new):
                rule = "event-property-removed-open-model"
            elif name in required(pair.old):
                rule = "event-required-property-removed-closed-model"
            else:
                rule = "event-optional-property-removed-closed-model"
            yield Finding(rule, "", pair.location, {"name": name})


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


def diff_event_schemas(history: Sequence[dict[str, Any]], new: dict[str, Any], *, mode: str = "BACKWARD",
                       required_with_default: RequiredWithDefault = "compatible",
                       old_version: str | None = None, new_version: str | None = None) -> Report:
    """Compare `new` with the latest of `history` (or every one of them, in a transitive mode)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    olds = history if mode.endswith("_TRANSITIVE") else history[-1:]
    findings: list[Finding] = []
    for old in olds:
        diff = EventDiff(old, new)
        for check in engine.CHECKS:
            findings += [f for f in check(diff) if f.rule_id.removeprefix("event-") not in _REPLACED]
        findings += content_model(diff, required_with_default=required_with_default)
    return engine.build_report(findings, old_version, new_version, level_of=level_for(mode))

