"""SQLite backend: one file, WAL, versioned migrations, one writer thread."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, TypeVar

import msgspec

from registry import audit as audit_log
from registry import webhooks
from registry.audit import (
    AuditEntry,
    AuditRecord,
    always,
    when_created,
    when_present,
    when_truthy,
    when_vote_recorded,
)
from registry.model import (
    AffectedConsumer,
    ChangeRequest,
    Consumer,
    Contract,
    NewChange,
    NewConsumer,
    NewContract,
    NewVerification,
    NewVersion,
    Plan,
    Subscription,
    Usage,
    Verification,
    Version,
    Vote,
)
from registry.store import json_text
from registry.webhooks import Delivery, Webhook

T = TypeVar("T")
Audit = AuditEntry | None

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

_VERSION_COLUMNS = ("contract, version, major, sha256, state, created_at, created_by, published_at, base_version,"
                    " required_bump, deprecated_at, sunset, successor")
_DELIVERY_COLUMNS = ("d.id, d.webhook, d.event_id, d.event_type, d.state, d.attempts, d.next_attempt_at,"
                     " d.last_status, d.last_error, d.created_at, d.delivered_at")
_CHANGE_COLUMNS = ("id, contract, version, base_version, state, proposer, proposer_team, required_approvals,"
                   " required_bump, findings, changes, lint, affected, created_at, updated_at, row_version")
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

    async def create_contract(self, new: NewContract, *, actor: str, audit: Audit = None) -> tuple[Contract, bool]:
        def tx(db: sqlite3.Connection) -> tuple[Contract, bool]:
            row = db.execute(f"SELECT {_CONTRACT_COLUMNS} FROM contracts WHERE name = ?", (new.name,)).fetchone()
            if row:
                return _contract(row), False
            values = (new.name, new.kind, new.owner, new.description, new.upstream, _now(), actor, new.compatibility)
            db.execute(f"INSERT INTO contracts ({_CONTRACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
            return _contract(values), True

        return await self._transaction(tx, when_created(audit))

    async def get_contract(self, name: str) -> Contract | None:
        row = await self._fetchone(f"SELECT {_CONTRACT_COLUMNS} FROM contracts WHERE name = ?", (name,))
        return _contract(row) if row else None

    async def list_contracts(self) -> list[Contract]:
        rows = await self._fetchall(f"SELECT {_CONTRACT_COLUMNS} FROM contracts ORDER BY name", ())
        return [_contract(r) for r in rows]

    async def add_version(self, new: NewVersion, *, actor: str, state: str = "draft", change: NewChange | None = None,
                          audit: Audit = None) -> tuple[Version, bool]:
        def tx(db: sqlite3.Connection) -> tuple[Version, bool]:
            query = f"SELECT {_VERSION_COLUMNS} FROM versions WHERE contract = ? AND version = ?"
            row = db.execute(query, (new.contract, new.version)).fetchone()
            if row:
                return _version(row), False
            now = _now()
            values = (new.contract, new.version, new.major, new.sha256, state, now, actor, None,
                      new.base_version, new.required_bump, None, None, None)
            db.execute(f"INSERT INTO versions ({_VERSION_COLUMNS}, document, changes)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*values, new.document, new.changes))
            if change is not None:
                db.execute(f"INSERT INTO change_requests ({_CHANGE_COLUMNS}) VALUES"
                           " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (change.id, new.contract, new.version, new.base_version,
                            "approved" if change.required_approvals == 0 else "open", change.proposer,
                            change.proposer_team, change.required_approvals, change.required_bump,
                            json.dumps(change.findings), json_text(change.changes) if change.changes else None,
                            json_text(change.lint) if change.lint else None,
                            msgspec.json.encode(change.affected_consumers).decode(), now, now, 1))
            return _version(values), True

        return await self._transaction(tx, when_created(audit))

    async def get_change(self, change_id: str) -> ChangeRequest | None:
        return await self._run(lambda: _change(self._connection(), change_id))

    async def change_for(self, contract: str, version: str) -> ChangeRequest | None:
        def read() -> ChangeRequest | None:
            db = self._connection()
            row = db.execute("SELECT id FROM change_requests WHERE contract = ? AND version = ?",
                             (contract, version)).fetchone()
            return _change(db, row[0]) if row else None

        return await self._run(read)

    async def list_changes(self, *, contract: str | None = None, state: str | None = None) -> list[ChangeRequest]:
        def read() -> list[ChangeRequest]:
            db = self._connection()
            ids = db.execute("SELECT id FROM change_requests WHERE (? IS NULL OR contract = ?) AND (? IS NULL OR"
                             " state = ?) ORDER BY created_at DESC", (contract, contract, state, state)).fetchall()
            return [c for (cid,) in ids if (c := _change(db, cid)) is not None]

        return await self._run(read)

    async def vote(self, change_id: str, vote: Vote, *, expected_row_version: int | None = None,
                   audit: Audit = None) -> tuple[ChangeRequest | None, str]:
        def tx(db: sqlite3.Connection) -> tuple[ChangeRequest | None, str]:
            current = _change(db, change_id)
            if current is None:
                return None, "missing"
            if expected_row_version is not None and current.row_version != expected_row_version:
                return current, "stale"
            if current.state != "open":
                return current, "closed"
            if any(v.voter == vote.voter for v in current.votes):
                return current, "duplicate"
            db.execute("INSERT INTO votes (change_id, voter, decision, comment, at) VALUES (?, ?, ?, ?, ?)",
                       (change_id, vote.voter, vote.decision, vote.comment, vote.at.isoformat()))
            approvals = 1 + sum(1 for v in current.votes if v.decision == "approve")
            state = "rejected" if vote.decision == "reject" else \
                "approved" if approvals >= current.required_approvals else "open"
            db.execute("UPDATE change_requests SET state = ?, updated_at = ?, row_version = row_version + 1"
                       " WHERE id = ?", (state, _now(), change_id))
            if state != "open":
                db.execute("UPDATE versions SET state = ? WHERE contract = ? AND version = ? AND state = 'in_review'",
                           (state, current.contract, current.version))
            return _change(db, change_id), "recorded"

        return await self._transaction(tx, when_vote_recorded(audit))

    async def close_change(self, change_id: str, state: str, *, expected: str, version_state: str,
                           audit: Audit = None) -> ChangeRequest | None:
        def tx(db: sqlite3.Connection) -> ChangeRequest | None:
            current = _change(db, change_id)
            if current is None or current.state != expected:
                return None
            db.execute("UPDATE change_requests SET state = ?, updated_at = ?, row_version = row_version + 1"
                       " WHERE id = ?", (state, _now(), change_id))
            db.execute("UPDATE versions SET state = ? WHERE contract = ? AND version = ?",
                       (version_state, current.contract, current.version))
            return _change(db, change_id)

        return await self._transaction(tx, when_present(audit))

    async def list_audit(self, *, target: str | None = None, actor: str | None = None, action: str | None = None,
                         limit: int = 1000, after_seq: int = 0) -> list[AuditRecord]:
        rows = await self._fetchall(
            "SELECT seq, at, actor, action, target, before, after, reason, correlation_id, prev_hash, hash FROM audit"
            " WHERE seq > ? AND (? IS NULL OR target = ?) AND (? IS NULL OR actor = ?) AND (? IS NULL OR action = ?)"
            " ORDER BY seq LIMIT ?", (after_seq, target, target, actor, actor, action, action, limit))
        return [_audit_record(r) for r in rows]

    async def create_webhook(self, webhook: Webhook, *, audit: Audit = None) -> None:
        await self._transaction(lambda db: db.execute(
            "INSERT INTO webhooks (id, url, events, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
            (webhook.id, webhook.url, json.dumps(webhook.events), webhook.created_at.isoformat(), webhook.created_by)),
            always(audit))

    async def list_webhooks(self) -> list[Webhook]:
        rows = await self._fetchall("SELECT id, url, events, created_at, created_by FROM webhooks ORDER BY created_at",
                                    ())
        return [Webhook(id=r[0], url=r[1], events=json.loads(r[2]), created_at=datetime.fromisoformat(r[3]),
                        created_by=r[4]) for r in rows]

    async def delete_webhook(self, webhook_id: str, *, audit: Audit = None) -> bool:
        def tx(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM deliveries WHERE webhook = ?", (webhook_id,))
            return db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount == 1

        return await self._transaction(tx, when_truthy(audit))

    async def due_deliveries(self, now: datetime, limit: int) -> list[tuple[Delivery, str, bytes]]:
        def tx(db: sqlite3.Connection) -> list[tuple[Delivery, str, bytes]]:
            rows = db.execute(
                f"SELECT {_DELIVERY_COLUMNS}, w.url, d.payload FROM deliveries d JOIN webhooks w ON w.id = d.webhook"
                " WHERE d.state = 'pending' AND d.next_attempt_at <= ? ORDER BY d.id LIMIT ?",
                (_iso(now), limit)).fetchall()
            lease = _iso(now + timedelta(seconds=60))  # another worker leaves claimed ones alone
            db.executemany("UPDATE deliveries SET next_attempt_at = ? WHERE id = ?", [(lease, r[0]) for r in rows])
            return [(_delivery(r[:11]), r[11], r[12].encode()) for r in rows]

        return await self._transaction(tx)

    async def mark_delivery(self, delivery_id: int, state: str, attempts: int, next_attempt_at: datetime | None,
                            status: int | None, error: str) -> None:
        await self._transaction(lambda db: db.execute(
            "UPDATE deliveries SET state = ?, attempts = ?, next_attempt_at = ?, last_status = ?, last_error = ?,"
            " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END WHERE id = ?",
            (state, attempts, _iso(next_attempt_at) if next_attempt_at else None, status, error, state, _now(),
             delivery_id)))

    async def list_deliveries(self, webhook_id: str, limit: int = 200) -> list[Delivery]:
        rows = await self._fetchall(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d WHERE d.webhook = ?"
                                    " ORDER BY d.id DESC LIMIT ?", (webhook_id, limit))
        return [_delivery(r) for r in rows]

    async def record_verification(self, contract: str, version: str, new: NewVerification, *, actor: str,
                                  audit: Audit = None) -> Verification:
        at = _now()

        def tx(db: sqlite3.Connection) -> Verification:
            db.execute("INSERT INTO verifications (contract, version, environment, passed, base_url, summary, report,"
                       " recorded_at, recorded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (contract, version, new.environment, int(new.passed), new.base_url, new.summary,
                        json_text(new.report) if new.report is not None else None, at, actor))
            return Verification(contract=contract, version=version, environment=new.environment, passed=new.passed,
                                base_url=new.base_url, summary=new.summary, recorded_at=datetime.fromisoformat(at),
                                recorded_by=actor)

        return await self._transaction(tx, always(audit))

    async def list_verifications(self, contract: str, version: str) -> list[Verification]:
        rows = await self._fetchall(
            "SELECT contract, version, environment, passed, base_url, summary, recorded_at, recorded_by"
            " FROM verifications WHERE contract = ? AND version = ? ORDER BY id DESC", (contract, version))
        return [Verification(contract=r[0], version=r[1], environment=r[2], passed=bool(r[3]), base_url=r[4],
                             summary=r[5], recorded_at=datetime.fromisoformat(r[6]), recorded_by=r[7]) for r in rows]

    async def append_audit(self, entry: AuditEntry) -> None:
        await self._transaction(lambda db: None, always(entry))

    async def audit_head(self) -> tuple[int, str] | None:
        row = await self._fetchone("SELECT seq, hash FROM audit_head WHERE id = 1", ())
        return (row[0], row[1]) if row else None

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
                        sunset: date | None = None, successor: str | None = None, audit: Audit = None
                        ) -> Version | None:
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
            if state == "published":
                db.execute("UPDATE change_requests SET state = 'published', updated_at = ?, row_version ="
                           " row_version + 1 WHERE contract = ? AND version = ? AND state = 'approved'",
                           (_now(), contract, version))
            query = f"SELECT {_VERSION_COLUMNS} FROM versions WHERE contract = ? AND version = ?"
            return _version(db.execute(query, (contract, version)).fetchone())

        return await self._transaction(tx, when_present(audit))

    async def list_published(self) -> list[tuple[Contract, Version, str]]:
        columns = ", ".join(f"c.{c}" for c in _CONTRACT_COLUMNS.split(", "))
        columns += ", " + ", ".join(f"v.{c}" for c in _VERSION_COLUMNS.split(", ")) + ", v.document"
        rows = await self._fetchall(
            f"SELECT {columns} FROM versions v JOIN contracts c ON c.name = v.contract"
            " WHERE v.state IN ('published', 'deprecated', 'retired') ORDER BY c.name, v.major, v.created_at", ())
        return [(_contract(r[:8]), _version(r[8:21]), r[21]) for r in rows]

    async def put_plan(self, plan: Plan, *, audit: Audit = None) -> None:
        await self._transaction(lambda db: db.execute(
            "INSERT INTO plans (name, definition) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET definition ="
            " excluded.definition", (plan.name, msgspec.json.encode(plan).decode())), always(audit))

    async def list_plans(self) -> list[Plan]:
        rows = await self._fetchall("SELECT definition FROM plans ORDER BY name", ())
        return [msgspec.json.decode(r[0], type=Plan) for r in rows]

    async def create_consumer(self, new: NewConsumer, secret_hash: str, *, actor: str,
                              audit: Audit = None) -> tuple[Consumer, bool]:
        def tx(db: sqlite3.Connection) -> tuple[Consumer, bool]:
            if db.execute("SELECT 1 FROM consumers WHERE id = ?", (new.id,)).fetchone():
                return _consumer(db, new.id), False
            db.execute("INSERT INTO consumers (id, name, plan, scopes, secret_hash, created_at, created_by)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (new.id, new.name, new.plan, json.dumps(sorted(set(new.scopes))), secret_hash, _now(), actor))
            return _consumer(db, new.id), True

        return await self._transaction(tx, when_created(audit))

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

    async def add_api_key(self, consumer_id: str, key_hash: str, *, audit: Audit = None) -> None:
        await self._transaction(lambda db: db.execute(
            "INSERT INTO api_keys (key_hash, consumer, created_at) VALUES (?, ?, ?)", (key_hash, consumer_id, _now())),
            always(audit))

    async def api_keys(self) -> dict[str, str]:
        return dict(await self._fetchall("SELECT key_hash, consumer FROM api_keys", ()))

    async def set_subscription(self, consumer_id: str, contract: str, major: int, *, subscribed: bool,
                               audit: Audit = None) -> bool:
        def tx(db: sqlite3.Connection) -> bool:
            if subscribed:
                cursor = db.execute("INSERT OR IGNORE INTO subscriptions (consumer, contract, major) VALUES (?, ?, ?)",
                                    (consumer_id, contract, major))
            else:
                cursor = db.execute("DELETE FROM subscriptions WHERE consumer = ? AND contract = ? AND major = ?",
                                    (consumer_id, contract, major))
            return cursor.rowcount == 1

        return await self._transaction(tx, when_truthy(audit))

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

    async def _transaction(self, fn: Callable[[sqlite3.Connection], T],
                           audit: Callable[[T], list[AuditEntry]] | None = None) -> T:
        """Run fn in one transaction; the audit records it yields are chained in the same one."""
        correlation = audit_log.correlation_id.get()

        def run() -> T:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")  # one writer at a time: the chain cannot fork
            try:
                result = fn(db)
                for entry in audit(result) if audit else []:
                    _append(db, entry, correlation)
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
    return _iso(datetime.now(UTC))


def _iso(moment: datetime) -> str:
    # one fixed width, so that stored times compare as text
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _delivery(row: tuple[Any, ...]) -> Delivery:
    (delivery_id, webhook, event_id, event_type, state, attempts, next_at, status, error, created,
     delivered) = row
    return Delivery(id=delivery_id, webhook=webhook, event_id=event_id, event_type=event_type, state=state,
                    attempts=attempts, next_attempt_at=datetime.fromisoformat(next_at) if next_at else None,
                    last_status=status, last_error=error, created_at=datetime.fromisoformat(created),
                    delivered_at=datetime.fromisoformat(delivered) if delivered else None)


def _audit_record(row: tuple[Any, ...]) -> AuditRecord:
    seq, at, actor, action, target, before, after, reason, correlation, prev_hash, digest = row
    return AuditRecord(seq=seq, at=datetime.fromisoformat(at), actor=actor, action=action, target=target,
                       before=json.loads(before) if before else None, after=json.loads(after) if after else None,
                       reason=reason, correlation_id=correlation, prev_hash=prev_hash, hash=digest)


def _append(db: sqlite3.Connection, entry: AuditEntry, correlation: str) -> None:
    head = db.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone() or (0, audit_log.GENESIS)
    seq, at = head[0] + 1, _now()
    digest = audit_log.record_hash(seq, at, entry, correlation, head[1])
    db.execute("INSERT INTO audit (seq, at, actor, action, target, before, after, reason, correlation_id, prev_hash,"
               " hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (seq, at, entry.actor, entry.action, entry.target, json_text(entry.before), json_text(entry.after),
                entry.reason, correlation, head[1], digest))
    db.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET"
               " seq = excluded.seq, hash = excluded.hash", (seq, digest))
    if entry.action in webhooks.EVENT_TYPES:  # the outbox: deliveries commit with the change they announce
        event = webhooks.cloud_event(seq, entry.action, entry.target, entry.actor, entry.after, entry.reason,
                                     correlation, at)
        payload = json.dumps(event, sort_keys=True, default=str)
        for hook_id, events in db.execute("SELECT id, events FROM webhooks").fetchall():
            if event["type"] in json.loads(events):
                db.execute("INSERT INTO deliveries (webhook, event_id, event_type, payload, state, attempts,"
                           " next_attempt_at, last_error, created_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, '', ?)",
                           (hook_id, event["id"], event["type"], payload, at, at))


def _change(db: sqlite3.Connection, change_id: str) -> ChangeRequest | None:
    row = db.execute(f"SELECT {_CHANGE_COLUMNS} FROM change_requests WHERE id = ?", (change_id,)).fetchone()
    if row is None:
        return None
    votes = [Vote(voter=v, decision=d, comment=c, at=datetime.fromisoformat(a)) for v, d, c, a in db.execute(
        "SELECT voter, decision, comment, at FROM votes WHERE change_id = ? ORDER BY at, voter", (change_id,))]
    (cid, contract, version, base, state, proposer, team, required, bump, findings, changes, lint, affected,
     created, updated, row_version) = row
    return ChangeRequest(
        id=cid, contract=contract, version=version, base_version=base, state=state, proposer=proposer,
        proposer_team=team, required_approvals=required, required_bump=bump, findings=json.loads(findings),
        changes=json.loads(changes) if changes else None, lint=json.loads(lint) if lint else None,
        affected_consumers=msgspec.json.decode(affected, type=list[AffectedConsumer]), votes=votes,
        created_at=datetime.fromisoformat(created), updated_at=datetime.fromisoformat(updated),
        row_version=row_version)


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
