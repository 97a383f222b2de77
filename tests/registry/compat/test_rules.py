"""Every rule of the table fires on its own fixture pair, at its level; the table stays honest.

Fixture folders are named by rule id and hold old.* and new.*; a rule without a folder,
a folder without a rule, or a message that does not render fails here.
"""

from __future__ import annotations

import ast
import re
import string
from datetime import date
from pathlib import Path

import pytest

from registry.compat import semver
from registry.compat.checks import event_content_model
from registry.compat.engine import diff_openapi
from registry.compat.events import diff_event_schemas
from registry.compat.model import LEVELS
from registry.compat.rules import CHECK_MODULES, RULES, RULES_LIST
from registry.documents import load_file

FIXTURES = Path(__file__).parent / "fixtures"
COMPAT = Path(__file__).resolve().parents[3] / "registry" / "compat"
RULE_ID = re.compile(r"(?:api|documentation|event|request|response|security|semver)(?:-[a-z0-9]+)+")
CONTEXTS = {"request-body", "request-parameter", "response-body"}  # where schemas sit, not rule ids
TODAY = date(2026, 11, 29)  # the fixtures' sunset dates lie far before or after it


def _pair(rule_id: str) -> tuple[dict, dict]:
    folder = FIXTURES / rule_id
    old = next(folder.glob("old.*"))
    new = next(folder.glob("new.*"))
    return load_file(old), load_file(new)


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_rule_fires_on_its_fixture(rule_id: str) -> None:
    rule = RULES[rule_id]
    old, new = _pair(rule_id)
    if rule_id.startswith("event-"):
        for mode, expected in (("BACKWARD", rule.level), ("FORWARD", rule.forward)):
            report = diff_event_schemas([old], new, mode=mode, old_version="1.0.0", new_version="2.0.0")
            fired = [c for c in report.changes if c.id == rule_id]
            assert fired, f"{rule_id} did not fire in {mode}: {[c.id for c in report.changes]}"
            assert {c.level for c in fired} == {expected}
        return
    report = diff_openapi(old, new, today=TODAY)
    fired = [c for c in report.changes if c.id == rule_id]
    assert fired, f"{rule_id} did not fire: {[c.id for c in report.changes]}"
    assert all(c.level == rule.level and c.direction == rule.direction for c in fired)
    placeholders = {f"{{{name}}}" for _, name, _, _ in string.Formatter().parse(rule.message) if name}
    assert not any(p in c.message for p in placeholders for c in fired), "a message was not rendered"


def test_every_rule_has_a_fixture_and_every_fixture_a_rule() -> None:
    folders = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    assert folders - set(RULES) == set(), "fixture folders without a rule"
    assert set(RULES) - folders == set(), "rules without a fixture"
    for folder in folders:
        assert list((FIXTURES / folder).glob("old.*")) and list((FIXTURES / folder).glob("new.*")), folder


def test_rule_table_is_well_formed() -> None:
    assert len(RULES_LIST) == len(RULES), "duplicate rule ids"
    assert len(RULES) >= 120
    for rule in RULES_LIST:
        assert re.fullmatch(r"[a-z]+(?:-[a-z0-9]+)+", rule.id), rule.id
        assert rule.level in LEVELS and rule.message.strip()
        assert rule.direction in ("request", "response", "none")
        assert (rule.forward is not None) == rule.id.startswith("event-"), rule.id


def test_required_property_with_default_is_configurable() -> None:
    old, new = _pair("event-required-property-with-default-added-open-model")
    lenient = diff_event_schemas([old], new, required_with_default="compatible")
    strict = diff_event_schemas([old], new, required_with_default="breaking")
    assert [c.level for c in lenient.changes] == ["INFO"]
    assert [(c.id, c.level) for c in strict.changes] == [("event-required-property-added-open-model", "ERR")]


def test_transitive_modes_compare_with_every_earlier_version() -> None:
    v1 = {"type": "object", "properties": {"a": {"type": "string"}}}
    v2 = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 10}}}
    v3 = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 10}}}
    assert diff_event_schemas([v1, v2], v3, mode="BACKWARD").changes == []
    transitive = diff_event_schemas([v1, v2], v3, mode="BACKWARD_TRANSITIVE")
    assert [(c.id, c.level) for c in transitive.changes] == [("event-max-length-added", "ERR")]
    assert diff_event_schemas([v1, v2], v3, mode="NONE").at_or_above("WARN") == []


def test_docs_rules_md_is_generated_from_the_table() -> None:
    from registry.compat.docs import read_fixtures, render

    committed = (Path(__file__).resolve().parents[3] / "docs" / "rules.md").read_text()
    assert committed == render(read_fixtures(FIXTURES)), "regenerate: python -m registry.compat.docs > docs/rules.md"


def test_every_rule_id_is_written_out_in_the_one_module_that_declares_it() -> None:
    sources = {path: path.read_text() for path in COMPAT.rglob("*.py")}
    declaring = [*CHECK_MODULES, event_content_model, semver]
    assert [rule for module in declaring for rule in module.RULES] == RULES_LIST
    for module in declaring:
        for rule in module.RULES:
            holders = [path for path, text in sources.items() if f'"{rule.id}"' in text]
            assert holders == [Path(module.__file__).resolve()], f"{rule.id} is written out in {holders}"


def test_every_id_the_code_can_emit_is_in_the_table() -> None:
    for path in COMPAT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and RULE_ID.fullmatch(node.value):
                assert node.value in RULES or node.value in CONTEXTS, f"{path.name}: {node.value} is not in the table"
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Finding" and node.args:
                assert not isinstance(node.args[0], (ast.JoinedStr, ast.BinOp)), f"{path.name}: a composed rule id"
