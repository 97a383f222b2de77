"""`make run`: `govgate serve --demo` as a process, its ready tokens, and a clean stop."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, spawn, stop, wait_http

pytestmark = pytest.mark.e2e


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


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
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in started if alive(pid)], "the demo left its upstream running"
    finally:
        for pid in started:  # whatever the assertion found still running
            subprocess.run(["kill", str(pid)], check=False, capture_output=True)
        stop(process)
