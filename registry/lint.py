"""The governance linter: run the rule table over a bundled contract under a ruleset.

A ruleset gives each rule a severity (`error`, `warn`, `info`) or turns it `off`. The default
ruleset is policies/lint-ruleset.yaml; an organisation's file may `extends: default` and
override severities rule by rule, or list only the rules it wants (without `extends`, a rule
it does not list is off). Unknown rule ids and severities are refused when the file loads.

    report = lint(document, kind="openapi", ruleset=load_ruleset(Path("org-ruleset.yaml")))
    report.blocking   # True when any finding is an error
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import msgspec

from registry.documents import parse
from registry.errors import InvalidDocument
from registry.lint_rules import RULES

Kind = Literal["openapi", "event"]
Severity = Literal["error", "warn", "info"]
Setting = Literal["error", "warn", "info", "off"]
SEVERITIES: tuple[Severity, ...] = ("error", "warn", "info")  # most severe first
SETTINGS: tuple[Setting, ...] = (*SEVERITIES, "off")


class InvalidRuleset(ValueError):
    """A ruleset file that cannot be read, or names rules or severities that do not exist."""


class LintConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A ruleset file as written (YAML): what it extends and the severity it gives each rule."""

    extends: Literal["default"] | None = None
    """`default`: start from the default ruleset's severities. Absent: only the rules listed here run."""
    rules: dict[str, str | bool] = {}
    """rule id -> error | warn | info | off; as in Spectral, `false` is off and `true` the default's severity."""

    def __post_init__(self) -> None:
        problems = []
        unknown = sorted(set(self.rules) - set(RULES))
        if unknown:
            problems.append(f"unknown rule ids: {', '.join(unknown)}")
        invalid = [f"{rule_id}: {setting!r}" for rule_id, setting in self.rules.items()
                   if not isinstance(setting, bool) and setting not in SETTINGS]
        if invalid:
            problems.append(f"invalid severities ({', '.join(invalid)}); use one of {', '.join(SETTINGS)}")
        if problems:
            raise ValueError("; ".join(problems))


class Ruleset(msgspec.Struct, frozen=True, kw_only=True):
    """The severity in force for every rule, resolved from a LintConfig (and the default it extends)."""

    severities: dict[str, Setting]
    source: str = "default"

    def severity(self, rule_id: str) -> Setting:
        """The setting of one rule; a rule the ruleset does not name is off."""
        return self.severities.get(rule_id, "off")


class LintFinding(msgspec.Struct, frozen=True, kw_only=True):
    """One problem found: the rule, its severity under the ruleset, where (a JSON pointer) and what."""

    rule: str
    severity: Severity
    path: str
    message: str


class LintSummary(msgspec.Struct, frozen=True, kw_only=True):
    """How many findings there are of each severity."""

    error: int = 0
    warn: int = 0
    info: int = 0


class LintReport(msgspec.Struct, frozen=True, kw_only=True):
    """The lint report of one document (the JSON shape of `govgate lint`)."""

    kind: Kind
    ruleset: str
    blocking: bool
    """True when any finding is an error: the contract cannot be proposed as it is."""
    summary: LintSummary
    findings: list[LintFinding]

    def at(self, severity: Severity) -> list[LintFinding]:
        """The findings of one severity."""
        return [f for f in self.findings if f.severity == severity]


def rule_kind(rule_id: str) -> Kind:
    """Which kind of document a rule lints: `event-` rules event schemas, all others OpenAPI."""
    return "event" if rule_id.startswith("event-") else "openapi"


def lint(document: dict[str, Any], *, kind: Kind, ruleset: Ruleset | None = None) -> LintReport:
    """Lint a bundled document with every rule of its kind that the ruleset does not turn off."""
    if kind not in ("openapi", "event"):
        raise ValueError(f"kind must be 'openapi' or 'event', not {kind!r}")
    ruleset = ruleset if ruleset is not None else default_ruleset()
    findings: list[LintFinding] = []
    for rule_id, check in RULES.items():
        severity = ruleset.severity(rule_id)
        if severity == "off" or rule_kind(rule_id) != kind:
            continue
        findings.extend(LintFinding(rule=rule_id, severity=severity, path=f.path, message=f.message)
                        for f in check(document))
    findings.sort(key=lambda f: (SEVERITIES.index(f.severity), f.path, f.rule, f.message))
    counts = {severity: sum(f.severity == severity for f in findings) for severity in SEVERITIES}
    return LintReport(kind=kind, ruleset=ruleset.source, blocking=counts["error"] > 0,
                      summary=LintSummary(**counts), findings=findings)


def detect_kind(document: dict[str, Any]) -> Kind:
    """`openapi` for a document with an `openapi` member, `event` (a JSON Schema) otherwise."""
    return "openapi" if "openapi" in document else "event"


def default_ruleset_path() -> Path:
    """Where the default ruleset ships: policies/lint-ruleset.yaml."""
    return Path(str(files("policies").joinpath("lint-ruleset.yaml")))


@cache
def default_ruleset() -> Ruleset:
    """The default ruleset (read once)."""
    return resolve_config(_read_config(default_ruleset_path()), source="default")


def load_ruleset(path: Path | str | None = None) -> Ruleset:
    """Load a ruleset file; with None, the default ruleset. Raises InvalidRuleset naming what is wrong."""
    if path is None:
        return default_ruleset()
    return resolve_config(_read_config(Path(path)), source=str(path))


def parse_ruleset(text: str, *, source: str = "ruleset") -> Ruleset:
    """A ruleset from YAML text (what an API request or a test carries instead of a file)."""
    return resolve_config(_decode(text, source), source=source)


def resolve_config(config: LintConfig, *, source: str) -> Ruleset:
    """The severity of every rule under a config: the default's when it extends it, then its own."""
    severities: dict[str, Setting] = dict(default_ruleset().severities) if config.extends == "default" else {}
    for rule_id, setting in config.rules.items():
        if isinstance(setting, bool):  # YAML 1.1 reads a bare `off` as false
            severities[rule_id] = default_ruleset().severity(rule_id) if setting else "off"
        else:
            severities[rule_id] = setting  # type: ignore[assignment] # checked in LintConfig.__post_init__
    return Ruleset(severities=severities, source=source)


def _read_config(path: Path) -> LintConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRuleset(f"cannot read lint ruleset {path}: {exc}") from None
    return _decode(text, str(path))


def _decode(text: str, source: str) -> LintConfig:
    try:
        data = parse(text, source=f"lint ruleset {source}")  # safe YAML, no aliases, a mapping
    except InvalidDocument as exc:
        raise InvalidRuleset("; ".join([exc.detail, *exc.errors])) from None
    try:
        return msgspec.convert(data, LintConfig)
    except msgspec.ValidationError as exc:
        raise InvalidRuleset(f"lint ruleset {source} is invalid: {exc}") from None
