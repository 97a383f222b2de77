"""`make run`: `govgate serve --demo` as a process, its ready tokens, and a clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port, spawn, stop, wait_http

pytestmark = pytest.mark.e2e


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def wait_gone(pids: list[int], timeout: float = 10) -> list[int]:
    """The pids still alive after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def test_the_demo_serves_the_bundled_contracts_and_stops_with_its_upstream(tmp_path: Path) -> None:
    port = free_port()
    process = spawn(["-m", "gateway.cli", "serve", "--demo", "--port", str(port)], cwd=tmp_path)
    started: list[int] = []
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", process=process, timeout=60)
        tokens = json.loads((tmp_path / ".govgate" / "demo-tokens.json").read_text())
        checkout = {"Authorization": f"Bearer {tokens['channel-checkout']}"}
        positions = httpx.get(f"http://127.0.0.1:{port}/wms.inventory/v1/positions", params={"limit": 2},
                              headers=checkout)
        assert positions.status_code == 200 and len(positions.json()["items"]) == 2
        invalid = httpx.post(f"http://127.0.0.1:{port}/erp.sales-orders/v1/orders", json={}, headers=checkout)
        assert invalid.status_code == 400 and invalid.headers["content-type"] == "application/problem+json"
        started = children(process.pid)
        assert started  # the sample ERP (and, with Redis, the events consumer)
        process.send_signal(signal.SIGTERM)  # what `docker stop` or systemd sends
        process.wait(timeout=20)
        assert not wait_gone(started), "the demo left its upstream running"
    finally:
        for pid in started:  # whatever the assertion found still running
            subprocess.run(["kill", str(pid)], check=False, capture_output=True)
        stop(process)


def test_every_published_contract_can_be_called_and_a_second_demo_changes_nothing(tmp_path: Path) -> None:
    port = free_port()
    process = spawn(["-m", "gateway.cli", "serve", "--demo", "--port", str(port)], cwd=tmp_path)
    started: list[int] = []
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", process=process, timeout=60)
        tokens_file = tmp_path / ".govgate" / "demo-tokens.json"
        tokens = json.loads(tokens_file.read_text())
        checkout = {"Authorization": f"Bearer {tokens['channel-checkout']}"}
        rma = httpx.post(f"http://127.0.0.1:{port}/returns.authorizations/v1/rmas", headers=checkout, json={
            "orderId": "3f1c2a9e-6d4b-4c1e-9a7f-2b8d5e6f7a10", "customerEmail": "ada@example.com",
            "lines": [{"sku": "TSHIRT-BLK-M", "quantity": 1, "reason": "wrong-size"}]})
        assert rma.status_code == 201, rma.text
        refund = httpx.get(f"http://127.0.0.1:{port}/returns.authorizations/v1/rmas/{rma.json()['id']}/refund",
                           headers=checkout)
        assert refund.status_code == 200 and refund.json()["state"] == "pending"

        before = (tokens_file.read_text(), (tmp_path / ".govgate" / "demo.db").stat().st_ino)
        for second_port in (port, free_port()):  # the same port, and the same folder on another port
            second = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--demo", "--port",
                                     str(second_port)], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert second.returncode == 2
            assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
        assert (tokens_file.read_text(), (tmp_path / ".govgate" / "demo.db").stat().st_ino) == before
        assert httpx.get(f"http://127.0.0.1:{port}/wms.inventory/v1/positions", headers=checkout).status_code == 200

        started = children(process.pid)
        process.kill()  # SIGKILL: no handler runs, the children must still go
        process.wait(timeout=10)
        assert not wait_gone(started), "a child outlived the demo's SIGKILL"
    finally:
        for pid in started:
            subprocess.run(["kill", str(pid)], check=False, capture_output=True)
        stop(process)
