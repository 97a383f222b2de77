"""SQLite backend: one file, WAL, versioned migrations, one writer thread."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Callable, TypeVar

import msgspec

from registry.model import (
    Consumer,
    Contract,
    NewConsumer,
    NewContract,
    NewVersion,
    Plan,
    Subscription,
    Usage,
    Version,
)

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
]

_VERSION_COLUMNS = ("contract, version, major, sha256, state, created_at, created_by, published_at, base_version,"
                    " required_bump, deprecated_at, sunset, successor")
_CONTRACT_COLUMNS = "name, kind, owner, description, upstream, created_at, created_by, compatibility"


class SQLiteStore:
    """The embedded store. All SQL runs on one thread that owns the connection."""

    def __init__(self, url: str) -> None:
        # sqlite:///relative.db, sqlite:////absolute.db (SQLAlchemy's convention), sqlite://:memory:
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

    async def create_contract(self, new: NewContract, *, actor: str) -> tuple[Contract, bool]:
        def tx(db: sqlite3.Connection) -> tuple[Contract, bool]:
            row = db.execute(f"SELECT {_CONTRACT_COLUMNS} FROM contracts WHERE name = ?", (new.name,)).fetchone()
            if row:
                return _contract(row), False
            values = (new.name, new.kind, new.owner, new.description, new.upstream, _now(), actor, new.compatibility)
            db.execute(f"INSERT INTO contracts ({_CONTRACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
            return _contract(values), True

        return await self._transaction(tx)

    async def get_contract(self, name: str) -> Contract | None:
        row = await self._fetchone(f"SELECT {_CONTRACT_COLUMNS} FROM contracts WHERE name = ?", (name,))
        return _contract(row) if row else None

    async def list_contracts(self) -> list[Contract]:
        rows = await self._fetchall(f"SELECT {_CONTRACT_COLUMNS} FROM contracts ORDER BY name", ())
        return [_contract(r) for r in rows]

    async def add_version(self, new: NewVersion, *, actor: str) -> tuple[Version, bool]:
        def tx(db: sqlite3.Connection) -> tuple[Version, bool]:
            query = f"SELECT {_VERSION_COLUMNS} FROM versions WHERE contract = ? AND version = ?"
            row = db.execute(query, (new.contract, new.version)).fetchone()
            if row:
                return _version(row), False
            values = (new.contract, new.version, new.major, new.sha256, "draft", _now(), actor, None,
                      new.base_version, new.required_bump, None, None, None)
            db.execute(f"INSERT INTO versions ({_VERSION_COLUMNS}, document, changes)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*values, new.document, new.changes))
            return _version(values), True

        return await self._transaction(tx)

    async def get_changes(self, contract: str, version: str) -> str | None:
        row = await self._fetchone("SELECT changes FROM versions WHERE contract = ? AND version = ?",
                                   (contract, version))
        return row[0] if row else None

    async def get_version(self, contract: str, version: str) -> Version | None:
        query = f"SELECT {_VERSION_COLUMNS} FROM versions WHERE contract = ? AND version = ?"
        row = await self._fetchone(query, (contract, version))
        return _version(row) if row else None

    async def get_document(self, contract: str, version: str) -> str | None:
        row = await self._fetchone("SELECT document FROM versions WHERE contract = ? AND version = ?",
                                   (contract, version))
        return row[0] if row else None

    async def list_versions(self, contract: str) -> list[Version]:
        query = f"SELECT {_VERSION_COLUMNS} FROM versions WHERE contract = ? ORDER BY created_at, rowid"
        return [_version(r) for r in await self._fetchall(query, (contract,))]

    async def set_state(self, contract: str, version: str, state: str, *, expected: str,
                        sunset: date | None = None, successor: str | None = None) -> Version | None:
        def tx(db: sqlite3.Connection) -> Version | None:
            published_at = _now() if state == "published" else None
            deprecated_at = _now() if state == "deprecated" else None
            cursor = db.execute(
                "UPDATE versions SET state = ?, published_at = COALESCE(?, published_at),"
                " deprecated_at = COALESCE(?, deprecated_at), sunset = COALESCE(?, sunset),"
                " successor = COALESCE(?, successor) WHERE contract = ? AND version = ? AND state = ?",
                (state, published_at, deprecated_at, sunset.isoformat() if sunset else None, successor,
                 contract, version, expected),
            )
            if cursor.rowcount != 1:
                return None
            query = f"SELECT {_VERSION_COLUMNS} FROM versions WHERE contract = ? AND version = ?"
            return _version(db.execute(query, (contract, version)).fetchone())

        return await self._transaction(tx)

    async def list_published(self) -> list[tuple[Contract, Version, str]]:
        columns = ", ".join(f"c.{c}" for c in _CONTRACT_COLUMNS.split(", "))
        columns += ", " + ", ".join(f"v.{c}" for c in _VERSION_COLUMNS.split(", ")) + ", v.document"
        rows = await self._fetchall(
            f"SELECT {columns} FROM versions v JOIN contracts c ON c.name = v.contract"
            " WHERE v.state IN ('published', 'deprecated', 'retired') ORDER BY c.name, v.major, v.created_at", ())
        return [(_contract(r[:8]), _version(r[8:21]), r[21]) for r in rows]

    async def put_plan(self, plan: Plan) -> None:
        await self._transaction(lambda db: db.execute(
            "INSERT INTO plans (name, definition) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET definition ="
            " excluded.definition", (plan.name, msgspec.json.encode(plan).decode())))

    async def list_plans(self) -> list[Plan]:
        rows = await self._fetchall("SELECT definition FROM plans ORDER BY name", ())
        return [msgspec.json.decode(r[0], type=Plan) for r in rows]

    async def create_consumer(self, new: NewConsumer, secret_hash: str, *, actor: str) -> tuple[Consumer, bool]:
        def tx(db: sqlite3.Connection) -> tuple[Consumer, bool]:
            if db.execute("SELECT 1 FROM consumers WHERE id = ?", (new.id,)).fetchone():
                return _consumer(db, new.id), False
            db.execute("INSERT INTO consumers (id, name, plan, scopes, secret_hash, created_at, created_by)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (new.id, new.name, new.plan, json.dumps(sorted(set(new.scopes))), secret_hash, _now(), actor))
            return _consumer(db, new.id), True

        return await self._transaction(tx)

    async def get_consumer(self, consumer_id: str) -> Consumer | None:
        def read() -> Consumer | None:
            db = self._connection()
            return _consumer(db, consumer_id) if db.execute(
                "SELECT 1 FROM consumers WHERE id = ?", (consumer_id,)).fetchone() else None

        return await self._run(read)

    async def list_consumers(self) -> list[Consumer]:
        def read() -> list[Consumer]:
            db = self._connection()
            return [_consumer(db, r[0]) for r in db.execute("SELECT id FROM consumers ORDER BY id")]

        return await self._run(read)

    async def consumer_secret_hash(self, consumer_id: str) -> str | None:
        row = await self._fetchone("SELECT secret_hash FROM consumers WHERE id = ?", (consumer_id,))
        return row[0] if row else None

    async def add_api_key(self, consumer_id: str, key_hash: str) -> None:
        await self._transaction(lambda db: db.execute(
            "INSERT INTO api_keys (key_hash, consumer, created_at) VALUES (?, ?, ?)", (key_hash, consumer_id, _now())))

    async def api_keys(self) -> dict[str, str]:
        return dict(await self._fetchall("SELECT key_hash, consumer FROM api_keys", ()))

    async def set_subscription(self, consumer_id: str, contract: str, major: int, *, subscribed: bool) -> bool:
        def tx(db: sqlite3.Connection) -> bool:
            if subscribed:
                cursor = db.execute("INSERT OR IGNORE INTO subscriptions (consumer, contract, major) VALUES (?, ?, ?)",
                                    (consumer_id, contract, major))
            else:
                cursor = db.execute("DELETE FROM subscriptions WHERE consumer = ? AND contract = ? AND major = ?",
                                    (consumer_id, contract, major))
            return cursor.rowcount == 1

        return await self._transaction(tx)

    async def record_usage(self, rows: list[Usage]) -> None:
        def tx(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO usage (consumer, contract, major, operation, count, errors, first_seen, last_seen)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (contract, major, operation, consumer) DO UPDATE SET"
                " count = count + excluded.count, errors = errors + excluded.errors,"
                " first_seen = MIN(first_seen, excluded.first_seen), last_seen = MAX(last_seen, excluded.last_seen)",
                [(r.consumer, r.contract, r.major, r.operation, r.count, r.errors, r.first_seen.isoformat(),
                  r.last_seen.isoformat()) for r in rows])

        await self._transaction(tx)

    async def list_usage(self, contract: str) -> list[Usage]:
        rows = await self._fetchall(
            "SELECT consumer, contract, major, operation, count, errors, first_seen, last_seen FROM usage"
            " WHERE contract = ? ORDER BY major, operation, consumer", (contract,))
        return [Usage(consumer=r[0], contract=r[1], major=r[2], operation=r[3], count=r[4], errors=r[5],
                      first_seen=datetime.fromisoformat(r[6]), last_seen=datetime.fromisoformat(r[7])) for r in rows]

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
                db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (number, _now()))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self._db = db

    async def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        return await self._run(run)

    async def _fetchone(self, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        return await self._run(lambda: self._connection().execute(query, params).fetchone())

    async def _fetchall(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return await self._run(lambda: self._connection().execute(query, params).fetchall())

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _consumer(db: sqlite3.Connection, consumer_id: str) -> Consumer:
    row = db.execute("SELECT id, name, plan, scopes, created_at, created_by FROM consumers WHERE id = ?",
                     (consumer_id,)).fetchone()
    subscriptions = [Subscription(contract=c, major=m) for c, m in db.execute(
        "SELECT contract, major FROM subscriptions WHERE consumer = ? ORDER BY contract, major", (consumer_id,))]
    return Consumer(id=row[0], name=row[1], plan=row[2], scopes=json.loads(row[3]), subscriptions=subscriptions,
                    created_at=datetime.fromisoformat(row[4]), created_by=row[5])


def _contract(row: tuple[Any, ...]) -> Contract:
    name, kind, owner, description, upstream, created_at, created_by, compatibility = row
    return Contract(name=name, kind=kind, owner=owner, description=description, upstream=upstream,
                    created_at=datetime.fromisoformat(created_at), created_by=created_by,
                    compatibility=compatibility)


def _version(row: tuple[Any, ...]) -> Version:
    (contract, version, major, sha, state, created_at, created_by, published_at, base_version, bump,
     deprecated_at, sunset, successor) = row
    return Version(contract=contract, version=version, major=major, sha256=sha, state=state,
                   created_at=datetime.fromisoformat(created_at), created_by=created_by,
                   published_at=datetime.fromisoformat(published_at) if published_at else None,
                   base_version=base_version, required_bump=bump,
                   deprecated_at=datetime.fromisoformat(deprecated_at) if deprecated_at else None,
                   sunset=date.fromisoformat(sunset) if sunset else None, successor=successor)
