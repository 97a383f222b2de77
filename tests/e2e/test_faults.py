"""Faults with real processes killed and restarted: Redis, and upstreams that hang or reset."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, stop, unavailable
from tests.e2e.conftest import GatewayProcess, running_gateway
from tests.e2e.reliability import Reliability
from tests.e2e.test_governed_call import ORDER

pytestmark = pytest.mark.e2e


class PrivateRedis:
    """A redis-server of this test's own, so that it can be killed without disturbing anyone."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("private redis did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[PrivateRedis]:
    if not shutil.which("redis-server") and not os.path.exists("/usr/bin/redis-server"):
        unavailable("redis-server is not installed: the fault tests kill and restart a Redis of their own")
    server = PrivateRedis()
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def resetter() -> Iterator[str]:
    """An upstream that accepts a connection and resets it at once."""
    port = free_port()
    code = ("import socket,struct\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            f"s.bind(('127.0.0.1',{port}));s.listen(64)\n"
            "while True:\n c,_=s.accept();c.setsockopt(socket.SOL_SOCKET,socket.SO_LINGER,struct.pack('ii',1,0));c.close()")
    process = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(0.3)
    yield f"http://127.0.0.1:{port}"
    stop(process)


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory, sample_erp: str, catalog: list[dict], redis_server: PrivateRedis,
             resetter: str) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two gateways on one Redis: rate limiting fails open on the first, closed on the second."""
    prefix = f"govgate-fault:{uuid.uuid4().hex[:8]}:"
    upstreams = {"erp": {"url": sample_erp, "read_timeout": 0.5, "retries": 0,
                         "circuit_breaker": {"consecutive_failures": 3, "open_seconds": 1.0}},
                 "returns": {"url": resetter, "retries": 1, "circuit_breaker": {"enabled": False}}}
    common = {"state": {"backend": "redis", "redis_url": redis_server.url, "key_prefix": prefix},
              "upstreams": upstreams}
    with running_gateway(tmp_path_factory.mktemp("fault-open"), sample_erp, catalog,
                         rate_limit={"failure_mode": "open"}, **common) as open_gw, \
            running_gateway(tmp_path_factory.mktemp("fault-closed"), sample_erp, catalog,
                            rate_limit={"failure_mode": "closed"}, **common) as closed_gw:
        yield open_gw, closed_gw


def test_redis_down_then_back_without_restarting_the_gateway(gateways: tuple[GatewayProcess, GatewayProcess],
                                                             redis_server: PrivateRedis) -> None:
    open_gw, closed_gw = gateways
    path = "/wms.inventory/v1/positions"
    assert open_gw.client.get(path).status_code == 200 and closed_gw.client.get(path).status_code == 200
    key = {"Idempotency-Key": f"fault-{uuid.uuid4()}"}
    redis_server.kill()
    try:
        open_answer = open_gw.client.get(path)
        closed_answer = closed_gw.client.get(path)
        idempotent = open_gw.client.post("/erp.sales-orders/v1/orders", json=ORDER, headers=key)
        assert open_answer.status_code == 200  # fails open: admitted, logged
        assert closed_answer.status_code == 503 and closed_answer.json()["type"].endswith("/rate-limit-unavailable")
        assert idempotent.status_code == 503 and idempotent.json()["type"].endswith("/idempotency-unavailable")
        assert "retry-after" in idempotent.headers
    finally:
        redis_server.start()
    Reliability.record("faults", "Redis killed (rate limit failure_mode open)", "200: admitted and logged")
    Reliability.record("faults", "Redis killed (rate limit failure_mode closed)", "503 rate-limit-unavailable")
    Reliability.record("faults", "Redis killed, POST with Idempotency-Key", "503 idempotency-unavailable + Retry-After; "
                       "the upstream was not called, so nothing ran twice")
    deadline = time.monotonic() + 10
    while closed_gw.client.get(path).status_code != 200:
        assert time.monotonic() < deadline, "the gateway did not recover after Redis came back"
        time.sleep(0.2)
    recovered = open_gw.client.post("/erp.sales-orders/v1/orders", json=ORDER, headers=key)
    assert recovered.status_code == 201
    assert open_gw.client.post("/erp.sales-orders/v1/orders", json=ORDER, headers=key).headers.get(
        "idempotent-replayed") == "true"
    Reliability.record("faults", "Redis restarted", "served again within seconds, no gateway restart; "
                       "idempotency replays again")


def test_an_upstream_that_resets_is_502(gateways: tuple[GatewayProcess, GatewayProcess]) -> None:
    gw = gateways[0]
    response = gw.client.get(f"/returns.authorizations/v1/rmas/{uuid.uuid4()}")
    assert response.status_code == 502 and response.json()["type"].endswith("/upstream-unavailable")
    assert httpx.get(gw.url + "/healthz").status_code == 200
    Reliability.record("faults", "an upstream that resets every connection", "502 upstream-unavailable (after one retry)")


def test_a_hanging_upstream_opens_the_breaker_which_then_recovers(
        gateways: tuple[GatewayProcess, GatewayProcess]) -> None:
    gw = gateways[1]
    slow = {"X-Upstream-Delay-Ms": "2000"}
    statuses = [gw.client.get("/wms.inventory/v1/positions", headers=slow).status_code for _ in range(3)]
    assert statuses == [504, 504, 504]
    opened = gw.client.get("/wms.inventory/v1/positions")
    assert opened.status_code == 503 and opened.json()["type"].endswith("/circuit-open")
    assert int(opened.headers["retry-after"]) >= 1
    assert 'govgate_circuit_breaker_state{upstream="erp"} 2.0' in gw.client.get("/metrics").text
    time.sleep(1.2)
    assert gw.client.get("/wms.inventory/v1/positions").status_code == 200  # the half-open probe succeeds
    assert gw.client.get("/wms.inventory/v1/positions").status_code == 200
    assert 'govgate_circuit_breaker_state{upstream="erp"} 0.0' in gw.client.get("/metrics").text
    Reliability.record("faults", "an upstream that hangs past read_timeout", "504 upstream-timeout, three times; "
                       "then 503 circuit-open with Retry-After; after 1 s a probe closes the breaker: 200")


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own (initdb as the postgres user), to stop and start at will."""

    BIN = Path("/usr/lib/postgresql")

    def __init__(self, root: Path) -> None:
        versions = sorted(self.BIN.glob("*/bin/initdb"))
        if not versions or not shutil.which("runuser"):
            unavailable("PostgreSQL server binaries or runuser are not installed: the store fault test needs its own "
                        "cluster to stop and start")
        self.bin = versions[-1].parent
        self.data = root / "pgdata"
        self.port = free_port()
        root.chmod(0o755)  # the postgres user must reach its data directory
        self.data.mkdir()
        shutil.chown(self.data, "postgres", "postgres")
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.data / "log"),
                          "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PrivatePostgres]:
    if os.geteuid() != 0:
        unavailable("the store fault test runs its own PostgreSQL cluster, which needs root to switch to postgres")
    root = Path(tempfile.mkdtemp(prefix="govgate-pg-"))  # pytest's own tmp folders are closed to other users
    server = PrivatePostgres(root)
    server.start()
    yield server
    with contextlib.suppress(subprocess.CalledProcessError):
        server.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_postgres_down_the_gateway_serves_its_snapshot_and_the_registry_says_503(
        tmp_path_factory: pytest.TempPathFactory, sample_erp: str, catalog: list[dict],
        postgres_server: PrivatePostgres) -> None:
    with running_gateway(tmp_path_factory.mktemp("pg-down"), sample_erp, catalog, store=postgres_server.url) as gw:
        assert gw.client.get("/wms.inventory/v1/positions").status_code == 200
        postgres_server.stop()
        try:
            served = [gw.client.get("/wms.inventory/v1/positions").status_code for _ in range(5)]
            assert served == [200] * 5
            read = gw.admin.get("/registry/contracts")
            write = gw.admin.post("/registry/plans", json={"name": "during-outage"})
            assert read.status_code == 503 and read.headers["content-type"] == "application/problem+json"
            assert read.headers["retry-after"] == "5"
            assert write.status_code == 503
        finally:
            postgres_server.start()
        deadline = time.monotonic() + 15
        while gw.admin.get("/registry/contracts").status_code != 200:
            assert time.monotonic() < deadline, "the registry did not recover after PostgreSQL came back"
            time.sleep(0.2)
        assert "during-outage" not in [p["name"] for p in gw.admin.get("/registry/plans").json()]
        assert gw.admin.get("/registry/audit/verify").json()["ok"] is True
    Reliability.record("faults", "PostgreSQL stopped (immediate shutdown)", "governed calls: 200 from the in-memory "
                       "snapshot; registry reads and writes: 503 + Retry-After")
    Reliability.record("faults", "PostgreSQL started again", "the registry answers again without a gateway restart; "
                       "the write refused during the outage is absent, the audit chain verifies")
