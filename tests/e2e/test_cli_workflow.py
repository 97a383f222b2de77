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
    assert "lint (" in text.stdout and "affected consumers (" in text.stdout
    waiting = govgate(server, board[0], "change", "list", "--waiting-for-me")
    assert change["id"] in waiting.stdout
    assert change["id"] not in govgate(server, integrator, "change", "list", "--waiting-for-me").stdout
    listed = govgate(server, integrator, "change", "list", "--contract", "returns.authorizations", "--state", "open")
    assert listed.returncode == 0 and change["id"] in listed.stdout
    assert govgate(server, integrator, "change", "approve", change["id"]).returncode == 1  # not on the board
    for token in board:
        approved = govgate(server, token, "change", "approve", change["id"], "--comment", "fine")
        assert approved.returncode == 0, approved.stderr
    assert "(approved)" in approved.stdout

    admin = server.registry_token("ops", ["admin"])
    published = govgate(server, admin, "contract", "publish", "returns.authorizations", "2.0.0")
    assert published.returncode == 0 and "published" in published.stdout
    # the test channel calls v1 and is not subscribed to v2: the output says so, and so does the 403
    assert "govgate consumer subscribe channel-test returns.authorizations@2" in published.stdout
    refused_call = server.client.get("/returns.authorizations/v2/rmas/c2a7d9e4-3b1f-4a6c-8d5e-7f9a0b1c2d3e")
    assert refused_call.status_code == 403
    assert "govgate consumer subscribe channel-test returns.authorizations@2" in refused_call.json()["detail"]
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
    assert refused.returncode == 1 and "major" in refused.stderr and "propose 3.0.0 instead" in refused.stderr
    first_major = copy.deepcopy(next(e for e in catalog if e["name"] == "returns.authorizations")["loaded"])
    first_major["info"]["version"] = "1.2.0"  # breaking against 1.0.0; 2.0.0 is taken: the next free major is 3
    first_major["paths"] = {p: item for p, item in list(first_major["paths"].items())[1:]}
    proposal.write_text(yaml.safe_dump(first_major))
    hinted = govgate(server, integrator, "contract", "propose", str(proposal), "--contract", "returns.authorizations")
    assert hinted.returncode == 1 and "propose 3.0.0 instead" in hinted.stderr, hinted.stderr
    assert hinted.stderr.startswith("govgate contract propose: the server answered 400: ")
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


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory, sample_erp: str,
                   catalog: list[dict]) -> Iterator[GatewayProcess]:
    with running_gateway(tmp_path_factory.mktemp("can-i-publish"), sample_erp, catalog, review_required=True,
                         publish_requires_verification=["staging"]) as running:
        yield running


def test_can_i_publish_needs_a_passing_verification(guarded_server: GatewayProcess, catalog: list[dict],
                                                    sample_erp: str, tmp_path: Path) -> None:
    server = guarded_server
    integrator = server.registry_token("ci-wms", ["integrator"], team="team-wms")
    admin = server.registry_token("ops", ["admin"])
    document = copy.deepcopy(next(e for e in catalog if e["name"] == "wms.inventory")["loaded"])
    document["info"]["version"] = "1.1.0"
    document["info"]["description"] = "Stock positions and reservations (documented better)."
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(document))
    change = json.loads(govgate(server, integrator, "contract", "propose", str(path), "--contract", "wms.inventory",
                                "--format", "json").stdout)["change_request"]
    board = server.registry_token("board-1", ["board"], team="governance")
    assert govgate(server, board, "change", "approve", change["id"]).returncode == 0
    refused = govgate(server, admin, "contract", "publish", "wms.inventory", "1.1.0")
    assert refused.returncode == 1 and "staging" in refused.stderr
    url = "/registry/contracts/wms.inventory/versions/1.1.0/can-i-publish"
    assert server.admin.get(url).json() == {"ok": False, "required": ["staging"], "missing": ["staging"]}

    # verify the paths the sample ERP answers for any generated value (see tests/gateway/test_verify.py)
    document["paths"] = {p: item for p, item in document["paths"].items() if p != "/positions"}
    path.write_text(yaml.safe_dump(document))
    verified = govgate(server, integrator, "verify", "wms.inventory@1.1.0", "--file", str(path), "--base-url",
                       sample_erp, "--max-examples", "5", "--record", "--environment", "staging")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "recorded against wms.inventory@1.1.0 in staging" in verified.stdout
    assert server.admin.get(url).json()["ok"] is True
    assert govgate(server, admin, "contract", "publish", "wms.inventory", "1.1.0").returncode == 0
    history = server.admin.get("/registry/contracts/wms.inventory/versions/1.1.0/verifications").json()
    assert history[0]["environment"] == "staging" and history[0]["passed"] is True
