"""No document crashes the engine, and a crash never reads as a verdict (exit 3, not 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway import cli
from registry.compat import engine
from registry.compat.engine import CheckFailed, diff_openapi
from registry.compat.events import diff_event_schemas
from registry.documents import load_file

FIXTURES = Path(__file__).parent / "fixtures"


def test_integer_status_keys_from_yaml_are_statuses(tmp_path: Path) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    head = "openapi: 3.0.3\ninfo: {title: t, version: 1.0.0}\npaths:\n  /a:\n    get:\n      responses:\n"
    old.write_text(head + "        200: {description: ok}\n        404: {description: missing}\n")
    new.write_text(head + "        200: {description: ok}\n")
    report = diff_openapi(load_file(old), load_file(new))
    assert [c.id for c in report.changes if not c.id.startswith("semver-")] == ["response-non-success-status-removed"]
    assert cli.main(["diff", str(old), str(new), "--fail-on", "WARN"]) == 1


def test_a_failing_check_is_exit_3_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def broken(diff: Any) -> Any:
        raise KeyError("boom")
        yield  # a generator, as checks are

    monkeypatch.setattr(engine, "CHECKS", [*engine.CHECKS, broken])
    old = next((FIXTURES / "request-body-type-changed").glob("old.*"))
    with pytest.raises(CheckFailed, match="test_robustness"):
        diff_openapi(load_file(old), load_file(old))
    assert cli.main(["diff", str(old), str(old)]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'boom'" in err and "internal error, not a verdict" in err


def _family(kind: str) -> list[Path]:
    suffix = ".json" if kind == "event" else ".yaml"
    return sorted(p for folder in FIXTURES.iterdir() if folder.name.startswith("event-") == (kind == "event")
                  for p in folder.glob(f"*{suffix}"))


@pytest.mark.parametrize("kind", ["openapi", "event"])
def test_every_fixture_diffs_against_its_neighbours_without_raising(kind: str) -> None:
    documents = [load_file(p) for p in _family(kind)]
    for i, old in enumerate(documents):
        for new in documents[i + 1:i + 6]:  # the next few in name order: other rules, other shapes
            for a, b in ((old, new), (new, old)):
                report = diff_openapi(a, b) if kind == "openapi" else diff_event_schemas([a], b, mode="FULL")
                assert report.summary["total"] == len(report.changes)


def test_cyclic_schemas_compare_the_same_whatever_the_hash_seed(tmp_path: Path) -> None:
    """An equality assumed for a cycle must not outlive a difference found later (it did, by key order)."""
    import json
    import os
    import subprocess
    import sys

    def doc(x_type: str) -> dict[str, Any]:
        schemas = {"A": {"type": "object", "properties": {f"p{i}": {"$ref": "#/components/schemas/B"}
                                                          for i in range(6)} | {"x": {"type": x_type}}},
                   "B": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"},
                                                          "n": {"type": "string"}}}}
        ops = {f"/{name}": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{name}"}}}}}}} for name in ("A", "B")}
        return {"openapi": "3.1.0", "info": {"title": "t", "version": "1.0.0"}, "paths": ops,
                "components": {"schemas": schemas}}

    (tmp_path / "old.json").write_text(json.dumps(doc("string")))
    (tmp_path / "new.json").write_text(json.dumps(doc("integer")))
    outputs = set()
    for seed in range(6):
        done = subprocess.run([sys.executable, "-m", "gateway.cli", "diff", str(tmp_path / "old.json"),
                               str(tmp_path / "new.json"), "--format", "json"], capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}, cwd=Path(__file__).parents[3])
        outputs.add(done.stdout)
    assert len(outputs) == 1
    changes = json.loads(outputs.pop())["changes"]
    assert {c["operation"] for c in changes if c["id"] == "response-body-type-changed"} == {"GET /A", "GET /B"}
