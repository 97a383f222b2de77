"""A report as text (colour for terminals), JSON, Markdown (pull-request comments) or JUnit XML."""

from __future__ import annotations

from collections.abc import Callable
from xml.sax.saxutils import escape, quoteattr

import msgspec

from registry.compat.model import Level, Report

_COLOURS = {"ERR": "\033[31m", "WARN": "\033[33m", "INFO": "\033[36m"}
_RESET = "\033[0m"
_ICONS = {"ERR": "🔴", "WARN": "🟠", "INFO": "🔵"}


def as_json(report: Report, fail_on: Level) -> str:
    """The JSON shape of ../shared/DESIGN.md: changes, summary, semver."""
    return msgspec.json.encode({"changes": report.changes, "summary": report.summary,
                                "semver": report.semver}).decode()


def as_text(report: Report, fail_on: Level, *, colour: bool = False) -> str:
    """One line per change, most severe first, and a summary line."""
    lines = []
    for change in report.changes:
        level = f"{_COLOURS[change.level]}{change.level:<4}{_RESET}" if colour else f"{change.level:<4}"
        where = " ".join(part for part in (change.operation, change.location) if part)
        lines.append(f"{level} {change.id}  {where}: {change.message}")
    lines.append(_summary(report))
    return "\n".join(lines)


def as_markdown(report: Report, fail_on: Level) -> str:
    """A pull-request comment: verdict, counts, and a table of changes."""
    failing = report.at_or_above(fail_on)
    verdict = f"❌ {len(failing)} change(s) at or above {fail_on}" if failing else f"✅ nothing at or above {fail_on}"
    lines = [
        "### govgate diff",
        "",
        f"{verdict} · required bump: **{report.semver['required_bump']}** · "
        + " · ".join(f"{k}: {v}" for k, v in report.summary.items()),
        "",
    ]
    if report.changes:
        lines += ["| level | rule | operation | location | change |", "|---|---|---|---|---|"]
        lines += [f"| {_ICONS[c.level]} {c.level} | `{c.id}` | {_md(c.operation)} | {_md(c.location)} | {_md(c.message)} |"
                  for c in report.changes]
    return "\n".join(lines)


def as_junit(report: Report, fail_on: Level) -> str:
    """One test case per change; the ones at or above the fail level are failures."""
    failing = {id(c) for c in report.at_or_above(fail_on)}
    cases = []
    for change in report.changes:
        name = quoteattr(f"{change.id} {change.operation} {change.location}".strip())
        if id(change) in failing:
            cases.append(f'    <testcase classname="govgate.diff" name={name}>\n'
                         f'      <failure type={quoteattr(change.level)} message={quoteattr(change.message)}/>\n'
                         "    </testcase>")
        else:
            cases.append(f'    <testcase classname="govgate.diff" name={name}/>')
    if not report.changes:
        cases.append('    <testcase classname="govgate.diff" name="no changes"/>')
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name="govgate diff" tests="{len(cases)}" failures="{len(failing)}">',
        f'  <testsuite name={quoteattr("compatibility")} tests="{len(cases)}" failures="{len(failing)}">',
        *cases,
        "  </testsuite>",
        "</testsuites>",
    ])


def _summary(report: Report) -> str:
    counts = ", ".join(f"{v} {k}" for k, v in report.summary.items() if k != "total")
    return f"{report.summary['total']} change(s): {counts}; required bump: {report.semver['required_bump']}"


def _md(text: str) -> str:
    return escape(text).replace("|", "\\|")


FORMATS: dict[str, Callable[..., str]] = {"text": as_text, "json": as_json, "markdown": as_markdown,
                                          "junit": as_junit}
