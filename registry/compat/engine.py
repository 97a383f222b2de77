"""Run every check of the rule table over a structured diff and build the report."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from registry.compat import semver
from registry.compat.model import LEVELS, Change, Finding, Level, Report, Rule, severity
from registry.compat.rules import CHECK_MODULES, RULES
from registry.compat.structure import ApiDiff

CHECKS = [module.check for module in CHECK_MODULES]


def diff_openapi(old: dict[str, Any], new: dict[str, Any], *, today: date | None = None) -> Report:
    """Compare two bundled OpenAPI 3.0 / 3.1 documents."""
    diff = ApiDiff(old, new, today=today)
    findings = [finding for check in CHECKS for finding in check(diff)]
    return build_report(findings, _version(old), _version(new))


def build_report(findings: Iterable[Finding], old_version: str | None, new_version: str | None,
                 level_of: Callable[[Rule], Level] | None = None) -> Report:
    """Render findings into changes (deduplicated, most severe first) with the semver verdict."""
    changes: dict[tuple[str, str, str, str], Change] = {}
    for finding in findings:
        rule = RULES[finding.rule_id]
        message = rule.message.format(**finding.args)
        level = level_of(rule) if level_of else rule.level
        change = Change(id=rule.id, level=level, direction=rule.direction, operation=finding.operation,
                        location=finding.location, message=message)
        changes.setdefault((change.id, change.operation, change.location, change.message), change)
    ordered = sorted(changes.values(), key=lambda c: (-severity(c.level), c.operation, c.location, c.id))
    required = semver.required_bump(ordered)
    proposed = semver.proposed_bump(old_version, new_version)
    if proposed is not None and not semver.at_least(proposed, required):
        rule = semver.BUMP_TOO_SMALL
        ordered.insert(0, Change(
            id=rule.id, level=rule.level, direction=rule.direction, operation="", location="info.version",
            message=rule.message.format(proposed=new_version, actual=proposed, required=required)))
    summary: dict[str, int] = {level: sum(1 for c in ordered if c.level == level) for level in reversed(LEVELS)}
    summary["total"] = len(ordered)
    return Report(changes=ordered, summary=summary, semver={
        "required_bump": required, "old_version": old_version, "new_version": new_version,
        "proposed_bump": proposed})


def _version(document: dict[str, Any]) -> str | None:
    info = document.get("info")
    return str(info["version"]) if isinstance(info, dict) and "version" in info else None
