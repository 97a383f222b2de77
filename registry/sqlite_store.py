"""SQLite backend: one file, WAL, versioned migrations, one thread that owns the connection.

A whole transaction runs on that thread, in one go: the shared queries are coroutines, but
SQLite's statements answer at once, so a transaction's coroutine never waits and is run to its
end right there (`_finish`). Transactions and reads take turns on the thread, and `BEGIN
IMMEDIATE` keeps other processes' writers out: the audit chain cannot fork.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

from registry.sql_base import Db
from registry.sql_rows import Row
from registry.sql_store import SQLStore

T = TypeVar("T")

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE contracts (
            name TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('openapi', 'event')),
            owner TEXT NOT NULL,
            description TEXT NOT NULL,
            upstream TEXT,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL
        );
        CREATE TABLE versions (
            contract TEXT NOT NULL REFERENCES contracts(name),
            version TEXT NOT NULL,
            major INTEGER NOT NULL,
            document TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            published_at TEXT,
            PRIMARY KEY (contract, version)
        );
        CREATE INDEX versions_state ON versions(state);
        """,
    ),
    (
        2,
        """
        ALTER TABLE contracts ADD COLUMN compatibility TEXT NOT NULL DEFAULT 'BACKWARD';
        ALTER TABLE versions ADD COLUMN base_version TEXT;
        ALTER TABLE versions ADD COLUMN required_bump TEXT;
        ALTER TABLE versions ADD COLUMN changes TEXT;
        """,
    ),
    (
        3,
        """
        CREATE TABLE plans (
            name TEXT PRIMARY KEY,
            definition TEXT NOT NULL
        );
        CREATE TABLE consumers (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            plan TEXT NOT NULL,
            scopes TEXT NOT NULL,
            secret_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL
        );
        CREATE TABLE api_keys (
            key_hash TEXT PRIMARY KEY,
            consumer TEXT NOT NULL REFERENCES consumers(id),
            created_at TEXT NOT NULL
        );
        CREATE TABLE subscriptions (
            consumer TEXT NOT NULL REFERENCES consumers(id),
            contract TEXT NOT NULL REFERENCES contracts(name),
            major INTEGER NOT NULL,
            PRIMARY KEY (consumer, contract, major)
        );
        """,
    ),
    (
        4,
        """
        CREATE TABLE usage (
            consumer TEXT NOT NULL,
            contract TEXT NOT NULL,
            major INTEGER NOT NULL,
            operation TEXT NOT NULL,
            count INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            PRIMARY KEY (contract, major, operation, consumer)
        );
        """,
    ),
    (
        5,
        """
        ALTER TABLE versions ADD COLUMN deprecated_at TEXT;
        ALTER TABLE versions ADD COLUMN sunset TEXT;
        ALTER TABLE versions ADD COLUMN successor TEXT;
        """,
    ),
    (
        6,
        """
        CREATE TABLE change_requests (
            id TEXT PRIMARY KEY,
            contract TEXT NOT NULL,
            version TEXT NOT NULL,
            base_version TEXT,
            state TEXT NOT NULL,
            proposer TEXT NOT NULL,
            proposer_team TEXT,
            required_approvals INTEGER NOT NULL,
            required_bump TEXT NOT NULL,
            findings TEXT NOT NULL,
            changes TEXT,
            lint TEXT,
            affected TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            row_version INTEGER NOT NULL,
            UNIQUE (contract, version),
            FOREIGN KEY (contract, version) REFERENCES versions(contract, version)
        );
        CREATE TABLE votes (
            change_id TEXT NOT NULL REFERENCES change_requests(id),
            voter TEXT NOT NULL,
            decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
            comment TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (change_id, voter)
        );
        CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            before TEXT,
            after TEXT,
            reason TEXT NOT NULL,
            correlation_id TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_target ON audit(target);
        CREATE TABLE audit_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL
        );
        """,
    ),
    (
        7,
        """
        CREATE TABLE webhooks (
            id TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            events TEXT NOT NULL,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL
        );
        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            webhook TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            payload TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at TEXT,
            last_status INTEGER,
            last_error TEXT NOT NULL,
            created_at TEXT NOT NULL,
            delivered_at TEXT
        );
        CREATE INDEX deliveries_due ON deliveries(state, next_attempt_at);
        """,
    ),
    (
        8,
        """
        CREATE TABLE verifications (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            contract TEXT NOT NULL,
            version TEXT NOT NULL,
            environment TEXT NOT NULL,
            passed INTEGER NOT NULL,
            base_url TEXT NOT NULL,
            summary TEXT NOT NULL,
            report TEXT,
            recorded_at TEXT NOT NULL,
            recorded_by TEXT NOT NULL,
            FOREIGN KEY (contract, version) REFERENCES versions(contract, version)
        );
        CREATE INDEX verifications_version ON verifications(contract, version, environment);
        """,
    ),
]


class SQLiteStore(SQLStore):
    """The embedded store: `sqlite:///relative.db`, `sqlite:////absolute.db` (SQLAlchemy's convention), `sqlite://:memory:`."""

    def __init__(self, url: str) -> None:
        self.path = url.removeprefix("sqlite://").removeprefix("/") or ":memory:"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        await self._run(self._open)

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def _in_transaction(self, fn: Callable[[Db], Awaitable[T]], *, read_only: bool) -> T:
        def run() -> T:
            if self._db is None:
                raise RuntimeError("store is not open")
            db = self._db
            if read_only:
                return _finish(fn(_Connection(db)))
            db.execute("BEGIN IMMEDIATE")  # one writer at a time: the chain cannot fork
            try:
                result = _finish(fn(_Connection(db)))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        return await self._run(run)

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
        applied = {r[0] for r in db.execute("SELECT version FROM schema_migrations")}
        for number, sql in MIGRATIONS:
            if number in applied:
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, sql.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?)", _text((number, datetime.now(UTC))))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self._db = db

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)


class _Connection:
    """The connection, on its own thread; times and dates go in as ISO text."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    async def one(self, query: str, params: tuple[Any, ...] = ()) -> Row | None:
        return self._db.execute(query, _text(params)).fetchone()

    async def all(self, query: str, params: tuple[Any, ...] = ()) -> list[Row]:
        return self._db.execute(query, _text(params)).fetchall()

    async def execute(self, query: str, params: tuple[Any, ...] = ()) -> int:
        return self._db.execute(query, _text(params)).rowcount

    async def executemany(self, query: str, params: list[tuple[Any, ...]]) -> None:
        self._db.executemany(query, [_text(p) for p in params])


def _finish(awaitable: Awaitable[T]) -> T:
    """Run a coroutine that never waits to its end, here and now."""
    steps = awaitable.__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("a SQLite transaction waited on something other than its connection")


def _text(params: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_iso(p) if isinstance(p, datetime) else p.isoformat() if isinstance(p, date) else p for p in params)


def _iso(moment: datetime) -> str:
    # one fixed width, so that stored times compare as text
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
