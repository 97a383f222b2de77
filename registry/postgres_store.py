"""PostgreSQL backend: a connection pool, versioned migrations, row locks where writers race.

Several registry instances may share one database, so every method is one transaction and
every read-decide-write takes a lock first (see `registry/sql_base.py`). Deadlocks and
serialization failures, which the lock order should make rare, are retried; a server that
cannot be reached is `StoreUnavailable`: the transaction did not commit, nothing changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.errors import DeadlockDetected, SerializationFailure
from psycopg.types.string import TextLoader
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from registry import audit as audit_log
from registry.errors import InvalidRequest, StoreUnavailable
from registry.sql_base import Db
from registry.sql_rows import Row
from registry.sql_store import SQLStore

T = TypeVar("T")
Connection = AsyncConnection[tuple[Any, ...]]

# pg_advisory_lock key held while migrating: "govgate" in ASCII, so other applications do not collide
MIGRATION_LOCK = 0x676F7667617465
POOL_MIN, POOL_MAX = 1, 10
RETRIES = 3

# Same numbering as the SQLite store. JSON columns are `json` (kept verbatim, like SQLite's text, so
# key order and bytes come back unchanged), timestamps TIMESTAMPTZ, counters BIGINT.
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
            created_at TIMESTAMPTZ NOT NULL,
            created_by TEXT NOT NULL
        );
        CREATE TABLE versions (
            contract TEXT NOT NULL REFERENCES contracts(name),
            version TEXT NOT NULL,
            major INTEGER NOT NULL,
            document TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            created_by TEXT NOT NULL,
            published_at TIMESTAMPTZ,
            seq BIGINT GENERATED ALWAYS AS IDENTITY,  -- insertion order, as SQLite's rowid
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
        ALTER TABLE versions ADD COLUMN changes JSON;
        """,
    ),
    (
        3,
        """
        CREATE TABLE plans (
            name TEXT PRIMARY KEY,
            definition JSON NOT NULL
        );
        CREATE TABLE consumers (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            plan TEXT NOT NULL,
            scopes JSON NOT NULL,
            secret_hash TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            created_by TEXT NOT NULL
        );
        CREATE TABLE api_keys (
            key_hash TEXT PRIMARY KEY,
            consumer TEXT NOT NULL REFERENCES consumers(id),
            created_at TIMESTAMPTZ NOT NULL
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
            count BIGINT NOT NULL,
            errors BIGINT NOT NULL,
            first_seen TIMESTAMPTZ NOT NULL,
            last_seen TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (contract, major, operation, consumer)
        );
        """,
    ),
    (
        5,
        """
        ALTER TABLE versions ADD COLUMN deprecated_at TIMESTAMPTZ;
        ALTER TABLE versions ADD COLUMN sunset DATE;
        ALTER TABLE versions ADD COLUMN successor TEXT;
        """,
    ),
    (
        6,
        f"""
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
            findings JSON NOT NULL,
            changes JSON,
            lint JSON,
            affected JSON NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            row_version INTEGER NOT NULL,
            UNIQUE (contract, version),
            FOREIGN KEY (contract, version) REFERENCES versions(contract, version)
        );
        CREATE TABLE votes (
            change_id TEXT NOT NULL REFERENCES change_requests(id),
            voter TEXT NOT NULL,
            decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
            comment TEXT NOT NULL,
            at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (change_id, voter)
        );
        CREATE TABLE audit (
            seq BIGINT PRIMARY KEY,
            at TIMESTAMPTZ NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            before JSON,
            after JSON,
            reason TEXT NOT NULL,
            correlation_id TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_target ON audit(target);
        CREATE TABLE audit_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq BIGINT NOT NULL,
            hash TEXT NOT NULL
        );
        -- the row every append locks: it exists from the start, so there is always something to lock
        INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '{audit_log.GENESIS}');
        """,
    ),
    (
        7,
        """
        CREATE TABLE webhooks (
            id TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            events json NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            created_by TEXT NOT NULL
        );
        CREATE TABLE deliveries (
            id BIGSERIAL PRIMARY KEY,
            webhook TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            payload TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at TIMESTAMPTZ,
            last_status INTEGER,
            last_error TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            delivered_at TIMESTAMPTZ
        );
        CREATE INDEX deliveries_due ON deliveries(state, next_attempt_at);
        """,
    ),
    (
        8,
        """
        CREATE TABLE verifications (
            id BIGSERIAL PRIMARY KEY,
            contract TEXT NOT NULL,
            version TEXT NOT NULL,
            environment TEXT NOT NULL,
            passed BOOLEAN NOT NULL,
            base_url TEXT NOT NULL,
            summary TEXT NOT NULL,
            report json,
            recorded_at TIMESTAMPTZ NOT NULL,
            recorded_by TEXT NOT NULL,
            FOREIGN KEY (contract, version) REFERENCES versions(contract, version)
        );
        CREATE INDEX verifications_version ON verifications(contract, version, environment);
        """,
    ),
]


class PostgresStore(SQLStore):
    """The production store: `postgresql://user@host:5432/db` (or `postgres://`), shared by many instances."""

    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE OF d SKIP LOCKED"
    insertion_order = "seq"
    least, greatest = "LEAST", "GREATEST"

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: AsyncConnectionPool[Connection] | None = None

    async def open(self) -> None:
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self.url, min_size=POOL_MIN, max_size=POOL_MAX, open=False, kwargs={"autocommit": True},
            configure=_configure, name="govgate-registry", timeout=5.0,
            # a round trip per checkout (~0.1 ms) so that a server restart or failover costs no failed request
            check=AsyncConnectionPool.check_connection)
        await pool.open(wait=True, timeout=30)
        try:
            async with pool.connection() as conn:
                await _migrate(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _in_transaction(self, fn: Callable[[Db], Awaitable[T]], *, read_only: bool) -> T:
        """Writes are READ COMMITTED (their locks order them), reads REPEATABLE READ, READ ONLY."""
        if self._pool is None:
            raise RuntimeError("store is not open")
        for attempt in range(1, RETRIES + 1):
            try:
                async with self._pool.connection() as db:
                    # pooled connections keep these: set them on every use
                    await db.set_read_only(read_only)
                    await db.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ if read_only
                                                 else psycopg.IsolationLevel.READ_COMMITTED)
                    async with db.transaction():
                        return await fn(_Connection(db))
            except (DeadlockDetected, SerializationFailure):
                if attempt == RETRIES:
                    raise
            except psycopg.DataError as exc:
                if "NUL" in str(exc):  # SQLite stores U+0000 in text, PostgreSQL refuses it
                    raise InvalidRequest("text fields cannot contain NUL (U+0000) characters") from None
                raise
            except (psycopg.OperationalError, PoolTimeout):
                raise StoreUnavailable() from None
        raise AssertionError("unreachable")


class _Connection:
    """A pooled connection in its transaction; `?` placeholders become psycopg's `%s`."""

    def __init__(self, db: Connection) -> None:
        self._db = db

    async def one(self, query: str, params: tuple[Any, ...] = ()) -> Row | None:
        return await (await self._db.execute(_format(query), params)).fetchone()

    async def all(self, query: str, params: tuple[Any, ...] = ()) -> list[Row]:
        return await (await self._db.execute(_format(query), params)).fetchall()

    async def execute(self, query: str, params: tuple[Any, ...] = ()) -> int:
        return (await self._db.execute(_format(query), params)).rowcount

    async def executemany(self, query: str, params: list[tuple[Any, ...]]) -> None:
        async with self._db.cursor() as cursor:
            await cursor.executemany(_format(query), params)


def _format(query: str) -> str:
    return query.replace("?", "%s")  # no query of the store has a literal ? or %


async def _configure(db: Connection) -> None:
    # json columns come back as their stored text and are decoded exactly as the SQLite store decodes them
    db.adapters.register_loader("json", TextLoader)


async def _migrate(db: Connection) -> None:
    """Apply pending migrations; a session advisory lock makes concurrent starters take turns."""
    await db.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        await db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                         " applied_at TIMESTAMPTZ NOT NULL)")
        applied = {r[0] for r in await (await db.execute("SELECT version FROM schema_migrations")).fetchall()}
        for number, sql in MIGRATIONS:
            if number in applied:
                continue
            async with db.transaction():
                await db.execute(sql)  # no parameters: several statements in one go
                await db.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                                 (number, datetime.now(UTC)))
    finally:
        await db.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
