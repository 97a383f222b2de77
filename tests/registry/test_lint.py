"""The governance linter: every rule fires on its bad fixture and not on its good one; rulesets
override severities and refuse what does not exist; the bundled contracts lint without errors.

Fixture folders under lint_fixtures/ are named by rule id and hold `bad.*`, `good.*` and
`expected.txt`: the JSON pointers the rule reports on `bad.*`, one a line (an empty line is the
document root).
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from gateway.catalog import bundled_catalog, read_catalog
from registry.compat.rules import RULES as COMPAT_RULES
from registry.documents import check_event_schema, check_openapi, load_file, resolve_pointer
from registry.lint import (
    SEVERITIES, InvalidRuleset, LintConfig, Ruleset, default_ruleset, default_ruleset_path, detect_kind, lint,
    load_ruleset, parse_ruleset, rule_kind,
)
from registry.lint_rules import RULES

FIXTURES = Path(__file__).parent / "lint_fixtures"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "lint.md"
CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"


def _fixture(rule_id: str, name: str) -> dict:
    return load_file(next((FIXTURES / rule_id).glob(f"{name}.*")))


def _only(rule_id: str, severity: str = "error") -> Ruleset:
    return Ruleset(severities={rule_id: severity}, source="test")


# --- every rule, on its fixtures ------------------------------------------------------------

@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_rule_fires_on_its_bad_fixture(rule_id: str) -> None:
    document = _fixture(rule_id, "bad")
    report = lint(document, kind=rule_kind(rule_id), ruleset=_only(rule_id))
    assert report.findings, f"{rule_id} did not fire on its bad fixture"
    assert {f.rule for f in report.findings} == {rule_id}
    expected = (FIXTURES / rule_id / "expected.txt").read_text().splitlines()
    assert sorted(f.path for f in report.findings) == sorted(expected)
    for finding in report.findings:
        resolve_pointer(document, finding.path)  # a pointer into the document, not a made-up location
        assert finding.message.strip()


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_rule_is_quiet_on_its_good_fixture(rule_id: str) -> None:
    document = _fixture(rule_id, "good")
    report = lint(document, kind=rule_kind(rule_id), ruleset=_only(rule_id))
    assert report.findings == [], [f.message for f in report.findings]


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_good_fixtures_are_valid_contract_documents(rule_id: str) -> None:
    # the rules are shown quiet on documents the registry would accept, not on fragments
    document = _fixture(rule_id, "good")
    (check_openapi if rule_kind(rule_id) == "openapi" else check_event_schema)(document)


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_rule_yields_only_its_own_id(rule_id: str) -> None:
    for name in ("bad", "good"):
        assert {f.rule_id for f in RULES[rule_id](_fixture(rule_id, name))} <= {rule_id}


# --- the tables stay honest -------------------------------------------------------------------

def test_every_rule_has_a_fixture_folder_and_every_folder_a_rule() -> None:
    folders = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    assert folders - set(RULES) == set(), "fixture folders without a rule"
    assert set(RULES) - folders == set(), "rules without a fixture folder"
    for folder in folders:
        for name in ("bad.*", "good.*", "expected.txt"):
            assert list((FIXTURES / folder).glob(name)), f"{folder} has no {name}"


def test_rule_ids_are_stable_kebab_case_and_documented_in_code() -> None:
    for rule_id, check in RULES.items():
        assert re.fullmatch(r"[a-z]+(?:-[a-z0-9]+)+", rule_id), rule_id
        assert check.__doc__ and check.__doc__.strip(), f"{rule_id} has no docstring"
    assert set(RULES).isdisjoint(COMPAT_RULES), "a lint rule id is also a compatibility rule id"
    assert {rule_kind(r) for r in RULES} == {"openapi", "event"}


def test_default_ruleset_lists_every_rule_with_a_severity_and_nothing_else() -> None:
    severities = default_ruleset().severities
    assert set(severities) == set(RULES)
    assert all(severity in SEVERITIES for severity in severities.values()), "the default turns no rule off"


def test_default_ruleset_explains_every_rule_in_a_comment() -> None:
    lines = default_ruleset_path().read_text().splitlines()
    for rule_id in RULES:
        line = next(line for line in lines if line.strip().startswith(f"{rule_id}:"))
        assert "#" in line and line.split("#", 1)[1].strip(), f"{rule_id} has no comment in the default ruleset"


def test_docs_describe_every_rule_with_its_default_severity() -> None:
    text = DOCS.read_text()
    for rule_id, severity in default_ruleset().severities.items():
        assert re.search(rf"^\| `{re.escape(rule_id)}` \| {severity} \|", text, re.M), rule_id


def test_default_severities_follow_the_governance_policy() -> None:
    severities = default_ruleset().severities
    must_block = {"operation-id-present", "operation-id-unique", "operation-security-defined",
                  "error-response-problem-json", "correlation-id-header", "info-version-semver", "server-https",
                  "event-id-declared", "event-root-type"}
    style = {"path-kebab-case", "schema-property-camel-case", "event-property-camel-case", "request-string-bounded",
             "request-array-bounded", "event-string-bounded", "operation-examples"}
    assert {rule: severities[rule] for rule in must_block} == dict.fromkeys(must_block, "error")
    assert {rule: severities[rule] for rule in style} == dict.fromkeys(style, "warn")


# --- rulesets -----------------------------------------------------------------------------------

def test_an_organisation_overrides_a_severity(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text("extends: default\nrules:\n  path-kebab-case: error\n")
    ruleset = load_ruleset(path)
    assert ruleset.severity("path-kebab-case") == "error"
    assert ruleset.severity("operation-examples") == default_ruleset().severity("operation-examples")
    report = lint(_fixture("path-kebab-case", "bad"), kind="openapi", ruleset=ruleset)
    kebab = [f for f in report.findings if f.rule == "path-kebab-case"]
    assert kebab and {f.severity for f in kebab} == {"error"} and report.blocking


def test_off_turns_a_rule_off() -> None:
    document = _fixture("correlation-id-header", "bad")
    assert any(f.rule == "correlation-id-header" for f in lint(document, kind="openapi").findings)
    ruleset = parse_ruleset("extends: default\nrules: {correlation-id-header: 'off'}\n")
    assert not any(f.rule == "correlation-id-header" for f in lint(document, kind="openapi", ruleset=ruleset).findings)


def test_false_and_bare_off_turn_a_rule_off_and_true_restores_the_default() -> None:
    # YAML 1.1 reads a bare `off` as false; Spectral rulesets write `false` and `true` too
    ruleset = parse_ruleset("rules: {path-kebab-case: off, info-contact: false, server-https: true}\n")
    assert ruleset.severities == {"path-kebab-case": "off", "info-contact": "off", "server-https": "error"}


def test_without_extends_only_the_listed_rules_run() -> None:
    ruleset = parse_ruleset("rules:\n  info-version-semver: warn\n")
    report = lint(_fixture("correlation-id-header", "bad") | {"info": {"title": "t", "version": "1"}},
                  kind="openapi", ruleset=ruleset)
    assert [(f.rule, f.severity) for f in report.findings] == [("info-version-semver", "warn")]
    assert not report.blocking


def test_unknown_rule_ids_are_refused_by_name() -> None:
    with pytest.raises(InvalidRuleset, match="unknown rule ids: no-such-rule, operationId-present"):
        parse_ruleset("extends: default\nrules:\n  operationId-present: error\n  no-such-rule: warn\n")
    with pytest.raises(ValueError, match="no-such-rule"):  # the config struct itself refuses them too
        msgspec.convert({"rules": {"no-such-rule": "warn"}}, LintConfig)


def test_bad_severities_are_refused_by_name() -> None:
    with pytest.raises(InvalidRuleset, match=r"server-https: 'fatal'.*error, warn, info, off"):
        parse_ruleset("extends: default\nrules:\n  server-https: fatal\n")


@pytest.mark.parametrize("text", ["extends: recommended\n", "rule: {}\n", "rules: [server-https]\n", "- a\n", ": :"])
def test_malformed_rulesets_are_refused(text: str) -> None:
    with pytest.raises(InvalidRuleset):
        parse_ruleset(text)


def test_an_unreadable_ruleset_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRuleset, match="cannot read"):
        load_ruleset(tmp_path / "missing.yaml")


def test_load_ruleset_without_a_path_is_the_default() -> None:
    assert load_ruleset(None) is default_ruleset()
    assert load_ruleset(default_ruleset_path()).severities == default_ruleset().severities


# --- the report -------------------------------------------------------------------------------

def test_report_json_shape_summary_and_order() -> None:
    document = _fixture("operation-id-present", "bad")  # no operationIds, no security, no correlation header
    report = lint(document, kind="openapi")
    data = msgspec.to_builtins(report)
    assert list(data) == ["kind", "ruleset", "blocking", "summary", "findings"]
    assert set(data["summary"]) == {"error", "warn", "info"}
    assert all(set(f) == {"rule", "severity", "path", "message"} for f in data["findings"])
    assert data["summary"] == {s: sum(f["severity"] == s for f in data["findings"]) for s in SEVERITIES}
    assert report.blocking is (report.summary.error > 0) is True
    ranks = [SEVERITIES.index(f.severity) for f in report.findings]
    assert ranks == sorted(ranks), "errors first, then warnings, then infos"
    assert report.at("error") and all(f.severity == "error" for f in report.at("error"))


def test_event_rules_do_not_run_on_openapi_documents_and_back() -> None:
    openapi = lint(_fixture("operation-id-present", "bad"), kind="openapi")
    event = lint(_fixture("event-string-bounded", "bad"), kind="event")
    assert all(rule_kind(f.rule) == "openapi" for f in openapi.findings)
    assert all(rule_kind(f.rule) == "event" for f in event.findings)


def test_detect_kind_and_unknown_kinds() -> None:
    assert detect_kind(_fixture("info-contact", "good")) == "openapi"
    assert detect_kind(_fixture("event-examples", "good")) == "event"
    with pytest.raises(ValueError, match="asyncapi"):
        lint({}, kind="asyncapi")  # type: ignore[arg-type]


def test_rules_survive_malformed_documents() -> None:
    # lint may see a document before the structural check does: rules skip what they do not understand
    odd = {"openapi": "3.1.0", "info": [], "paths": {"/a": {"get": {"parameters": "x", "responses": [],
           "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/nowhere"}}}},
           "security": [{1: ["s"]}], "tags": [{"a": 1}, "t"]}}, "/b": [], 7: {}},
           "components": {"schemas": {"S": {"type": "string", "format": ["date"], "properties": {1: {}}}},
                          "parameters": {"P": 1}, 3: {4: {}}},
           "servers": [{"url": 7}, "x", {"url": "http://[::1"}], "security": [1], "tags": [{"name": {}}]}
    assert lint(odd, kind="openapi", ruleset=Ruleset(severities=dict.fromkeys(RULES, "warn"))).findings
    assert lint({"type": 1, "properties": [], "$id": "http://[x", "title": 3}, kind="event").findings


# --- the bundled contracts --------------------------------------------------------------------

CATALOG = read_catalog(bundled_catalog())


def test_every_bundled_contract_document_is_in_the_catalog() -> None:
    listed = {(CONTRACTS / entry["document"]).resolve() for entry in CATALOG}
    on_disk = {p.resolve() for folder in ("openapi", "events") for p in (CONTRACTS / folder).iterdir() if p.is_file()}
    assert on_disk <= listed


@pytest.mark.parametrize("entry", CATALOG, ids=[entry["name"] for entry in CATALOG])
def test_bundled_contract_lints_without_errors(entry: dict) -> None:
    report = lint(entry["loaded"], kind=entry["kind"])
    for finding in report.findings:
        print(f"{entry['name']}: {finding.severity} {finding.rule} {finding.path}: {finding.message}")
        resolve_pointer(entry["loaded"], finding.path)
    assert report.at("error") == [] and not report.blocking
