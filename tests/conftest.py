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
from typing import Any, NoReturn

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


def unavailable(reason: str) -> NoReturn:
    """Something a test needs is missing: skip with the reason locally; fail in CI (CI=true), which runs all."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run every test)")
    pytest.skip(reason)


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
        unavailable(f"Redis is not reachable at {REDIS_URL}; start it (redis-server --port 6379) "
                    "or set GOVGATE_TEST_REDIS_URL")
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


POSTGRES_URL = os.environ.get("GOVGATE_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres")


def _postgres_reachable(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def database_url(server_url: str, name: str) -> str:
    """The same server URL naming another database."""
    import urllib.parse

    return urllib.parse.urlsplit(server_url)._replace(path=f"/{name}").geturl()


class PostgresDatabases:
    """Throwaway databases (govgate_test_<random>…) on the test server, dropped when the session ends."""

    def __init__(self, server_url: str) -> None:
        import uuid

        self.server_url = server_url
        self.prefix = f"govgate_test_{uuid.uuid4().hex[:10]}"
        self.names: list[str] = []

    def create(self) -> str:
        """A new empty database; its URL."""
        name = self.prefix if not self.names else f"{self.prefix}_{len(self.names)}"
        self._admin(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return database_url(self.server_url, name)

    def drop_all(self) -> None:
        """Drop every database made here, closing whatever connections are left (a killed process's)."""
        for name in reversed(self.names):
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.names.clear()

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.server_url, autocommit=True) as db:
            db.execute(statement.encode())


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    """Makes throwaway databases on the real PostgreSQL. Absent locally: skip with the reason; in CI: fail."""
    if not _postgres_reachable(POSTGRES_URL):
        unavailable(f"PostgreSQL is not reachable at {POSTGRES_URL}; start it (pg_ctlcluster 15 main start) "
                    "or set GOVGATE_TEST_POSTGRES_URL to a server URL whose user may CREATE DATABASE")
    databases = PostgresDatabases(POSTGRES_URL)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def postgres_url(postgres_databases: PostgresDatabases) -> str:
    """This session's own database (govgate_test_<random>), migrated; dropped at the end."""
    import asyncio

    from registry.postgres_store import PostgresStore

    async def migrate(url: str) -> None:
        store = PostgresStore(url)
        await store.open()
        await store.close()

    url = postgres_databases.create()
    asyncio.run(migrate(url))
    return url


def _deletion_order(db: Any) -> list[str]:
    """Every registry table, referencing tables before the ones they reference."""
    from graphlib import TopologicalSorter

    tables = [r[0] for r in db.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        " AND tablename NOT IN ('schema_migrations', 'audit_head')")]
    references = db.execute("SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
                            " WHERE contype = 'f' AND connamespace = current_schema()::regnamespace").fetchall()
    graph: dict[str, set[str]] = {table: set() for table in tables}
    for child, parent in references:
        graph.setdefault(parent, set()).add(child)  # a parent is emptied after its children
    return [t for t in TopologicalSorter(graph).static_order() if t in tables]


@pytest.fixture()
def postgres_store_url(postgres_url: str) -> str:
    """The session's database, emptied for this test: every table cleared, the audit chain at its start.

    DELETE in dependency order takes ~10 ms here; TRUNCATE ~100 ms, a database from a template ~50 ms
    (and ~700 ms to drop it again).
    """
    import psycopg

    from registry.audit import GENESIS

    with psycopg.connect(postgres_url, autocommit=True) as db, db.transaction():
        for table in _deletion_order(db):
            db.execute(f'DELETE FROM "{table}"'.encode())
        db.execute("UPDATE audit_head SET seq = 0, hash = %s WHERE id = 1", (GENESIS,))
    return postgres_url
