"""Shared fixtures: the bundled contracts, free ports, real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.catalog import bundled_catalog, read_catalog

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def catalog() -> list[dict]:
    """The bundled catalog entries with their bundled documents."""
    return read_catalog(bundled_catalog())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    """Block until `url` answers 200, or fail the test."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s: {last}")


def spawn(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a Python module as a separate process with the repo importable."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, *args], cwd=cwd or ROOT, env=full_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(process: subprocess.Popen) -> None:
    """Terminate a process and reap it (kill if it lingers)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stderr:
        process.stderr.close()


@pytest.fixture(scope="session")
def sample_erp() -> Iterator[str]:
    """The sample ERP upstream as a real process; its base URL."""
    port = free_port()
    process = spawn(["-m", "gateway.demo.erp", "--port", str(port)])
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


REDIS_URL = os.environ.get("GOVGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_reachable(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis the tests use. Absent locally: skip with the reason; in CI (CI=true): fail."""
    if not _redis_reachable(REDIS_URL):
        reason = (f"Redis is not reachable at {REDIS_URL}; start it (redis-server --port 6379) "
                  "or set GOVGATE_TEST_REDIS_URL")
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI must run every Redis test)")
        pytest.skip(reason)
    return REDIS_URL


@pytest.fixture()
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    import uuid

    import redis

    prefix = f"govgate-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)
    client.close()
