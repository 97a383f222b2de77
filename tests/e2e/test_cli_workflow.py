"""The workflow from a CI pipeline's and a board member's seat: the govgate CLI against a real server."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.e2e.conftest import GatewayProcess, running_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sample_erp: str, catalog: list[dict]) -> Iterator[GatewayProcess]:
    with running_gateway(tmp_path_factory.mktemp("cli"), sample_erp, catalog, review_required=True,
                         min_sunset_days=1) as running:
        yield running


def govgate(server: GatewayProcess, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GOVGATE_URL": server.url, "GOVGATE_TOKEN": token, "XDG_CONFIG_HOME": "/nonexistent"}
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_propose_review_publish_deprecate_from_the_cli(server: GatewayProcess, catalog: list[dict],
                                                       tmp_path: Path) -> None:
    integrator = server.registry_token("ci-pipeline", ["integrator"], team="team-returns")
    board = [server.registry_token(f"board-{i}", ["board"], team="governance") for i in (1, 2)]
    document = copy.deepcopy(next(e for e in catalog if e["name"] == "returns.authorizations")["loaded"])
    document["info"]["version"] = "2.0.0"
    first_path = next(iter(document["paths"]))
    del document["paths"][first_path]
    proposal = tmp_path / "returns.yaml"
    proposal.write_text(yaml.safe_dump(document))

    proposed = govgate(server, integrator, "contract", "propose", str(proposal), "--contract",
                       "returns.authorizations", "--format", "json")
    assert proposed.returncode == 0, proposed.stderr
    change = json.loads(proposed.stdout)["change_request"]
    assert change["required_approvals"] == 2

    text = govgate(server, board[0], "change", "show", change["id"])
    assert text.returncode == 0 and "api-operation-removed-without-deprecation" in text.stdout
    assert govgate(server, integrator, "change", "approve", change["id"]).returncode == 1  # not on the board
    for token in board:
        approved = govgate(server, token, "change", "approve", change["id"], "--comment", "fine")
        assert approved.returncode == 0, approved.stderr
    assert "(approved)" in approved.stdout

    admin = server.registry_token("ops", ["admin"])
    published = govgate(server, admin, "contract", "publish", "returns.authorizations", "2.0.0")
    assert published.returncode == 0 and "published" in published.stdout
    sunset = (dt.date.today() + dt.timedelta(days=40)).isoformat()
    deprecated = govgate(server, admin, "contract", "deprecate", "returns.authorizations", "1.0.0",
                         "--sunset", sunset, "--successor", "2.0.0")
    assert deprecated.returncode == 0 and sunset in deprecated.stdout
    verified = govgate(server, admin, "audit", "verify")
    assert verified.returncode == 0 and "intact" in verified.stdout

    document["info"]["version"] = "2.0.1"
    document["paths"] = {}  # removes everything: a breaking change in a patch version
    proposal.write_text(yaml.safe_dump(document))
    refused = govgate(server, integrator, "contract", "propose", str(proposal), "--contract",
                      "returns.authorizations")
    assert refused.returncode == 1 and "major" in refused.stderr
    unreachable = subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "verify", "--url",
                                  "http://127.0.0.1:9", "--token", admin], cwd=ROOT, capture_output=True, text=True)
    assert unreachable.returncode == 2


def test_lint_errors_block_a_proposal_and_lint_runs_offline(server: GatewayProcess, catalog: list[dict],
                                                            tmp_path: Path) -> None:
    integrator = server.registry_token("ci-pipeline", ["integrator"], team="team-wms")
    document = copy.deepcopy(next(e for e in catalog if e["name"] == "wms.inventory")["loaded"])
    document["info"]["version"] = "1.1.0"
    for item in document["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    document.pop("security", None)
    path = tmp_path / "insecure.yaml"
    path.write_text(yaml.safe_dump(document))
    offline = subprocess.run([sys.executable, "-m", "gateway.cli", "lint", str(path), "--format", "json"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert offline.returncode == 1
    errors = {f["rule"] for f in json.loads(offline.stdout)["findings"] if f["severity"] == "error"}
    assert errors == {"operation-security-defined"}
    refused = govgate(server, integrator, "contract", "propose", str(path), "--contract", "wms.inventory")
    assert refused.returncode == 1 and "lint errors" in refused.stderr and "operation-security-defined" in refused.stderr
    clean = copy.deepcopy(next(e for e in catalog if e["name"] == "wms.inventory")["loaded"])
    clean["info"]["version"] = "1.1.0"
    path.write_text(yaml.safe_dump(clean))
    proposed = govgate(server, integrator, "contract", "propose", str(path), "--contract", "wms.inventory",
                       "--format", "json")
    assert proposed.returncode == 0, proposed.stderr
    lint = json.loads(proposed.stdout)["change_request"]["lint"]
    assert lint["blocking"] is False and lint["summary"]["error"] == 0


def test_consumers_and_plans_from_the_cli(server: GatewayProcess) -> None:
    admin = server.registry_token("ops", ["admin"])
    assert govgate(server, admin, "plan", "set", "pos", "--rate", "50", "--burst", "100", "--priority",
                   "checkout").returncode == 0
    assert "pos" in govgate(server, admin, "plan", "list").stdout
    created = govgate(server, admin, "consumer", "create", "pos-17", "--plan", "pos", "--scope", "inventory:read")
    assert created.returncode == 0 and "gg_secret_" in created.stdout
    assert govgate(server, admin, "consumer", "subscribe", "pos-17", "wms.inventory@1").returncode == 0
    key = govgate(server, admin, "consumer", "api-key", "pos-17").stdout.rsplit(" ", 1)[-1].strip()
    import httpx

    assert httpx.get(server.url + "/wms.inventory/v1/positions", headers={"X-API-Key": key}).status_code == 200
    listed = govgate(server, admin, "consumer", "list")
    assert "pos-17" in listed.stdout and "wms.inventory@1" in listed.stdout
    integrator = server.registry_token("ian", ["integrator"])
    assert govgate(server, integrator, "consumer", "list").returncode == 1  # admins only
