"""Run every check of the rule table over a structured diff and build the report."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import Any

from registry.compat import semver
from registry.compat.model import LEVELS, Change, Finding, Level, Report, Rule, severity
from registry.compat.rules import CHECK_MODULES, RULES
from registry.compat.structure import ApiDiff, DiffTooLarge, Limits

CHECKS = [module.check for module in CHECK_MODULES]
__all__ = ["CheckFailed", "DiffTooLarge", "Limits", "build_report", "diff_openapi", "run_checks"]


class CheckFailed(Exception):
    """A check raised: an internal error of the engine (a bug), never to be read as a verdict."""

    def __init__(self, check: Callable[..., Any]) -> None:
        module = sys.modules[check.__module__]
        rules = [rule.id for rule in getattr(module, "RULES", [])]
        shown = ", ".join(rules[:3]) + (f" and {len(rules) - 3} more" if len(rules) > 3 else "")
        super().__init__(f"the check {module.__name__} ({shown}) failed")


def run_checks(checks: Iterable[Callable[..., Iterable[Finding]]], diff: ApiDiff, **options: Any) -> Iterator[Finding]:
    """Every finding of every check; a check that raises becomes CheckFailed naming it and its rules."""
    for check in checks:
        try:
            yield from check(diff, **options)
        except DiffTooLarge:
            raise
        except Exception as exc:
            raise CheckFailed(check) from exc


def diff_openapi(old: dict[str, Any], new: dict[str, Any], *, today: date | None = None,
                 minor_bump_level: Level = "INFO", limits: Limits = Limits()) -> Report:
    """Compare two bundled OpenAPI 3.0 / 3.1 documents.

    Raises DiffTooLarge when the documents would take more than `limits` to compare.
    """
    diff = ApiDiff(old, new, today=today, limits=limits)
    findings = run_checks(CHECKS, diff)  # counted against the limits as they come
    return build_report(findings, _version(old), _version(new), minor_bump_level=minor_bump_level, limits=limits)


def build_report(findings: Iterable[Finding], old_version: str | None, new_version: str | None,
                 level_of: Callable[[Rule], Level] | None = None, *, minor_bump_level: Level = "INFO",
                 limits: Limits = Limits()) -> Report:
    """Render findings into changes (deduplicated, most severe first) with the semver verdict."""
    changes: dict[tuple[str, str, str, str], Change] = {}
    for count, finding in enumerate(findings):
        if count >= limits.findings:
            raise DiffTooLarge(f"more than {limits.findings:,} findings")
        rule = RULES[finding.rule_id]
        message = rule.message.format(**finding.args)
        level = level_of(rule) if level_of else rule.level
        change = Change(id=rule.id, level=level, direction=rule.direction, operation=finding.operation,
                        location=finding.location, message=message)
        changes.setdefault((change.id, change.operation, change.location, change.message), change)
    ordered = sorted(changes.values(), key=lambda c: (-severity(c.level), c.operation, c.location, c.id))
    required = semver.required_bump(ordered)
    proposed = semver.proposed_bump(old_version, new_version)
    bump_rule = semver.verdict(required, proposed)
    if bump_rule is not None:
        level = bump_rule.level if bump_rule is semver.BUMP_TOO_SMALL else minor_bump_level
        ordered.insert(0, Change(
            id=bump_rule.id, level=level, direction=bump_rule.direction, operation="", location="info.version",
            message=bump_rule.message.format(proposed=new_version, actual=proposed, required=required)))
        ordered.sort(key=lambda c: -severity(c.level))  # stable: the verdict leads its level
    summary: dict[str, int] = {level: sum(1 for c in ordered if c.level == level) for level in reversed(LEVELS)}
    summary["total"] = len(ordered)
    return Report(changes=ordered, summary=summary, semver={
        "required_bump": required, "old_version": old_version, "new_version": new_version,
        "proposed_bump": proposed})


def _version(document: dict[str, Any]) -> str | None:
    info = document.get("info")
    return str(info["version"]) if isinstance(info, dict) and "version" in info else None
