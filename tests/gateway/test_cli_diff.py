"""`govgate diff` as CI runs it: a real process, its output and its exit code."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "registry" / "compat" / "fixtures"
ROOT = Path(__file__).resolve().parents[2]


def govgate_diff(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "diff", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def pair(rule: str) -> tuple[Path, Path]:
    return next((FIXTURES / rule).glob("old.*")), next((FIXTURES / rule).glob("new.*"))


def test_json_output_has_the_documented_shape_and_exit_1_on_err() -> None:
    result = govgate_diff(*pair("request-body-required-property-added"), "--format", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"changes", "summary", "semver"}
    change = report["changes"][0]
    assert set(change) == {"id", "level", "direction", "operation", "location", "message"}
    assert change["id"] == "request-body-required-property-added" and change["level"] == "ERR"
    assert change["direction"] == "request" and change["operation"] == "POST /items"
    assert report["semver"]["required_bump"] == "major"


@pytest.mark.parametrize(("fail_on", "code"), [("ERR", 0), ("WARN", 1), ("INFO", 1)])
def test_fail_on_decides_the_exit_code(fail_on: str, code: int) -> None:
    result = govgate_diff(*pair("response-body-enum-value-added"), "--fail-on", fail_on)  # a WARN
    assert result.returncode == code, result.stdout + result.stderr


def test_markdown_and_junit() -> None:
    old, new = pair("api-operation-removed-without-deprecation")
    markdown = govgate_diff(old, new, "--format", "markdown").stdout
    assert markdown.startswith("### govgate diff") and "`api-operation-removed-without-deprecation`" in markdown
    junit = ET.fromstring(govgate_diff(old, new, "--format", "junit").stdout)
    assert junit.get("failures") == "1"
    assert junit.find(".//failure").get("type") == "ERR"


def test_text_is_coloured_on_request() -> None:
    coloured = govgate_diff(*pair("request-body-type-changed"), "--colour", "always").stdout
    assert "\033[31mERR" in coloured
    assert "\033[" not in govgate_diff(*pair("request-body-type-changed")).stdout


def test_event_schemas_take_a_mode_in_any_case() -> None:
    old, new = pair("event-optional-property-added-closed-model")
    assert govgate_diff(old, new, "--mode", "BACKWARD").returncode == 0
    assert govgate_diff(old, new, "--mode", "FORWARD").returncode == 1
    assert govgate_diff(old, new, "--mode", "backward").returncode == 0
    assert govgate_diff(old, new, "--mode", "forward").returncode == 1


def test_a_missing_minor_bump_fails_only_at_the_level_asked_for() -> None:
    old, new = pair("semver-minor-bump-missing")  # an operation added in a patch release
    assert govgate_diff(old, new).returncode == 0
    assert govgate_diff(old, new, "--minor-bump-level", "ERR").returncode == 1


def test_unreadable_input_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("openapi: [unclosed")
    old, _ = pair("request-body-type-changed")
    assert govgate_diff(old, tmp_path / "missing.yaml").returncode == 2
    result = govgate_diff(old, broken)
    assert result.returncode == 2 and "not valid YAML" in result.stderr
    event, _ = pair("event-type-changed")
    assert govgate_diff(old, event).returncode == 2
