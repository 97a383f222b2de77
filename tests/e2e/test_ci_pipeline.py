"""docs/ci.md as written: its GitHub and GitLab pipelines and the board's commands, against `govgate serve --demo`.

The commands are taken from the page itself, run by bash in a checkout whose `api/openapi.yaml` points at
a sibling file, with a `govgate` on PATH that sees only what the page's `pip install` line installs
(tests/e2e/plain_install.py): lint, diff against the registry, propose, verify against the demo's ERP,
then the board approves and an admin publishes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REDIS_URL, ROOT, free_port, stop, wait_http

pytestmark = pytest.mark.e2e
DOC = ROOT / "docs" / "ci.md"


def blocks(language: str) -> list[str]:
    """The fenced code blocks of docs/ci.md in one language."""
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


class Demo:
    """`govgate serve --demo` in a folder of its own; its banner lines as they are printed."""

    def __init__(self, folder: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.prefix = f"govgate-test:{uuid.uuid4().hex[:12]}:"
        (folder / "govgate.yaml").write_text(json.dumps({"state": {"key_prefix": self.prefix}}))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--demo", "--port", str(port), "--config", "govgate.yaml"],
            cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.lines: list[str] = []
        self.banner = threading.Event()
        self.listening_at_banner: bool | None = None
        threading.Thread(target=self._read, daemon=True).start()
        self.tokens: dict[str, str] = {}
        self.folder = folder

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("govgate demo:") and not self.banner.is_set():
                try:  # the banner says the gateway listens: it must, at that moment
                    self.listening_at_banner = httpx.get(self.url + "/healthz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    self.listening_at_banner = False
                self.banner.set()

    def erp_url(self) -> str:
        assert self.banner.wait(60), "the demo printed no banner"
        found = next(re.search(r"ERP (http://\S+),", line) for line in self.lines if "sample upstreams:" in line)
        assert found is not None
        return found.group(1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = Demo(tmp_path_factory.mktemp("demo"))
    try:
        wait_http(running.url + "/readyz", process=running.process, timeout=90)
        running.tokens = json.loads((running.folder / ".govgate" / "demo-tokens.json").read_text())
        yield running
    finally:
        stop(running.process)
        _forget_keys(running.prefix)


def _forget_keys(prefix: str) -> None:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        client.close()
    except redis.RedisError:
        pass  # no Redis: the demo kept its state in memory


def checkout(folder: Path, version: str) -> Path:
    """A repository whose api/openapi.yaml is the ERP contract at `version`, with $refs into ../common/."""
    (folder / "api").mkdir(parents=True)
    shutil.copytree(ROOT / "contracts" / "common", folder / "common")
    text = (ROOT / "contracts" / "openapi" / "erp.sales-orders.yaml").read_text()
    document = yaml.safe_load(text)
    document["info"]["version"] = version
    document["info"]["description"] = document["info"].get("description", "") + " Orders are kept for ten years."
    (folder / "api" / "openapi.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    assert "../common/components.yaml" in (folder / "api" / "openapi.yaml").read_text()
    return folder


def install(bin_dir: Path, line: str) -> None:
    """The page's `pip install …` line: a `govgate` on PATH that sees exactly what that install brings."""
    words = shlex.split(line.split("#")[0])
    assert words[:2] == ["pip", "install"] and len(words) == 3, line
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "govgate"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {ROOT / 'tests/e2e/plain_install.py'} "
                    f"{shlex.quote(words[2])} \"$@\"\n")
    shim.chmod(0o755)


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """One step as a CI runner runs it (GitHub: bash -eo pipefail)."""
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


def environment(demo: Demo, bin_dir: Path, token: str, **extra: str) -> dict[str, str]:
    path = f"{bin_dir}:{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "PYTHONPATH": str(ROOT), "GOVGATE_URL": demo.url, "GOVGATE_TOKEN": token,
            "XDG_CONFIG_HOME": "/nonexistent", **extra}


def github_steps(erp_url: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    workflow = yaml.safe_load(next(b for b in blocks("yaml") if "jobs:" in b))
    job = workflow["jobs"]["govern"]
    steps = [step for step in job["steps"] if "run" in step]
    for step in steps:
        step["run"] = step["run"].replace("${{ vars.STAGING_ERP_URL }}", erp_url)
        assert "${{" not in step["run"], step["run"]
    return {k: v for k, v in job["env"].items() if "${{" not in v}, steps


def test_the_documented_pipeline_runs_as_written(demo: Demo, tmp_path: Path) -> None:
    erp_url = demo.erp_url()
    assert demo.listening_at_banner, "the banner was printed before the port listened"
    repo = checkout(tmp_path / "repo", "1.1.0")
    bin_dir = tmp_path / "bin"
    job_env, steps = github_steps(erp_url)
    env = environment(demo, bin_dir, demo.tokens["integrator"], **job_env)
    for step in steps:
        if step["run"].startswith("pip install"):
            install(bin_dir, step["run"])
            continue
        done = bash(step["run"], repo, env)
        assert done.returncode == 0, f"{step.get('name')}: {done.stdout}\n{done.stderr}"
    assert "Traceback" not in (repo / "diff.md").read_text()
    change = json.loads((repo / "change.json").read_text())["change_request"]
    assert change["state"] == "open" and change["version"] == "1.1.0" and change["base_version"] == "1.0.0"
    report = ET.parse(repo / "verify.xml").getroot()
    assert report.get("tests") == "4" and report.get("failures") == "0", ET.tostring(report).decode()

    gitlab = yaml.safe_load(next(b for b in blocks("yaml") if "before_script:" in b))["contract"]
    gitlab_env = {**env, **gitlab["variables"], "STAGING_ERP_URL": erp_url, "CI_COMMIT_BRANCH": "main",
                  "CI_DEFAULT_BRANCH": "main"}
    for line in gitlab["before_script"]:
        install(bin_dir, line)
    for line in gitlab["script"]:
        done = bash(line, repo, gitlab_env)
        assert done.returncode == 0, f"{line}: {done.stdout}\n{done.stderr}"
    assert json.loads((repo / "published.json").read_text())["info"]["version"] == "1.0.0"

    board = next(b for b in blocks("sh") if "change approve" in b)
    board_env = {"CHANGE": change["id"], "CONTRACT": "erp.sales-orders", "VERSION": "1.1.0"}
    for line in filter(None, board.splitlines()):
        token = demo.tokens["admin" if "contract publish" in line else "board-1"]
        done = bash(line, repo, environment(demo, bin_dir, token, **board_env))
        assert done.returncode == 0, f"{line}: {done.stdout}\n{done.stderr}"
        if "--waiting-for-me" in line:
            assert change["id"] in done.stdout
        if "change show" in line:
            assert "lint (" in done.stdout and "affected consumers (" in done.stdout
    published = httpx.get(demo.url + "/registry/published",
                          headers={"Authorization": f"Bearer {demo.tokens['admin']}"}).json()
    assert {"erp.sales-orders@1.1.0"} <= {f"{v['contract']}@{v['version']}" for v in published}


def test_verify_without_its_extra_says_what_to_install(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tests/e2e/plain_install.py"), "govgate", "verify",
                           "erp.sales-orders", "--file", str(ROOT / "contracts/openapi/erp.sales-orders.yaml"),
                           "--base-url", "http://127.0.0.1:9"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == 'govgate verify: schemathesis is not installed: pip install "govgate[verify]"'
