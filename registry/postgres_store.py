"""PostgreSQL backend: a connection pool, versioned migrations, row locks where writers race.

Several registry instances may share one database, so every method is one transaction and
every read-decide-write takes a lock first:

- the audit chain: appends lock the head row (`audit_head`, id 1), so sequence numbers and
  hashes follow one another across instances and the chain cannot fork;
- votes and withdrawals lock the change request row before counting or checking its state;
- state changes compare and set (`UPDATE … WHERE state = expected`);
- creations insert `ON CONFLICT DO NOTHING` and read back whichever row won.

Locks are taken in one order (change request, version, audit head) so writers never deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import msgspec
import psycopg
from psycopg import AsyncConnection
from psycopg.errors import DeadlockDetected, SerializationFailure
from psycopg.types.string import TextLoader
from psycopg_pool import AsyncConnectionPool, PoolTimeout

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
from registry.errors import InvalidRequest, StoreUnavailable
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

# which audit records a result yields is the same rule for every backend: share it, do not copy it

T = TypeVar("T")
Audit = AuditEntry | None
Connection = AsyncConnection[tuple[Any, ...]]

# pg_advisory_lock key held while migrating: "govgate" in ASCII, so other applications do not collide
MIGRATION_LOCK = 0x676F7667617465
POOL_MIN, POOL_MAX = 1, 10
RETRIES = 3  # for deadlocks and serialization failures, which the lock order should make rare

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

_VERSION_COLUMNS = ("contract, version, major, sha256, state, created_at, created_by, published_at, base_version,"
                    " required_bump, deprecated_at, sunset, successor")
_CHANGE_COLUMNS = ("id, contract, version, base_version, state, proposer, proposer_team, required_approvals,"
                   " required_bump, findings, changes, lint, affected, created_at, updated_at, row_version")
_CONTRACT_COLUMNS = "name, kind, owner, description, upstream, created_at, created_by, compatibility"
_DELIVERY_COLUMNS = ("d.id, d.webhook, d.event_id, d.event_type, d.state, d.attempts, d.next_attempt_at,"
                     " d.last_status, d.last_error, d.created_at, d.delivered_at")
_AUDIT_COLUMNS = "seq, at, actor, action, target, before, after, reason, correlation_id, prev_hash, hash"


class PostgresStore:
    """The production store: `postgresql://user@host:5432/db` (or `postgres://`), shared by many instances."""

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

    async def create_contract(self, new: NewContract, *, actor: str, audit: Audit = None) -> tuple[Contract, bool]:
        async def tx(db: Connection) -> tuple[Contract, bool]:
            row = await _one(db, f"INSERT INTO contracts ({_CONTRACT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                                 f" ON CONFLICT (name) DO NOTHING RETURNING {_CONTRACT_COLUMNS}",
                             (new.name, new.kind, new.owner, new.description, new.upstream, _now(), actor,
                              new.compatibility))
            if row:
                return _contract(row), True
            existing = await _one(db, f"SELECT {_CONTRACT_COLUMNS} FROM contracts WHERE name = %s", (new.name,))
            return _contract(existing), False

        return await self._transaction(tx, when_created(audit))

    async def get_contract(self, name: str) -> Contract | None:
        row = await self._fetchone(f"SELECT {_CONTRACT_COLUMNS} FROM contracts WHERE name = %s", (name,))
        return _contract(row) if row else None

    async def list_contracts(self) -> list[Contract]:
        rows = await self._fetchall(f"SELECT {_CONTRACT_COLUMNS} FROM contracts ORDER BY name", ())
        return [_contract(r) for r in rows]

    async def add_version(self, new: NewVersion, *, actor: str, state: str = "draft", change: NewChange | None = None,
                          audit: Audit = None) -> tuple[Version, bool]:
        async def tx(db: Connection) -> tuple[Version, bool]:
            query = f"SELECT {_VERSION_COLUMNS} FROM versions WHERE contract = %s AND version = %s"
            if row := await _one(db, query, (new.contract, new.version)):
                return _version(row), False
            now = _now()
            # two proposers of one version at once: the second waits for the first, then inserts nothing
            row = await _one(db, f"INSERT INTO versions ({_VERSION_COLUMNS}, document, changes) VALUES"
                                 " (%s, %s, %s, %s, %s, %s, %s, NULL, %s, %s, NULL, NULL, NULL, %s, %s)"
                                 f" ON CONFLICT (contract, version) DO NOTHING RETURNING {_VERSION_COLUMNS}",
                             (new.contract, new.version, new.major, new.sha256, state, now, actor, new.base_version,
                              new.required_bump, new.document, new.changes))
            if row is None:
                return _version(await _one(db, query, (new.contract, new.version))), False
            if change is not None:
                await db.execute(
                    f"INSERT INTO change_requests ({_CHANGE_COLUMNS}) VALUES"
                    " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (change.id, new.contract, new.version, new.base_version,
                     "approved" if change.required_approvals == 0 else "open", change.proposer, change.proposer_team,
                     change.required_approvals, change.required_bump, json.dumps(change.findings),
                     json_text(change.changes) if change.changes else None, json_text(change.lint) if change.lint else None,
                     msgspec.json.encode(change.affected_consumers).decode(), now, now, 1))
            return _version(row), True

        return await self._transaction(tx, when_created(audit))

    async def get_change(self, change_id: str) -> ChangeRequest | None:
        return await self._read(lambda db: _change(db, change_id))

    async def change_for(self, contract: str, version: str) -> ChangeRequest | None:
        async def read(db: Connection) -> ChangeRequest | None:
            row = await _one(db, "SELECT id FROM change_requests WHERE contract = %s AND version = %s",
                             (contract, version))
            return await _change(db, row[0]) if row else None

        return await self._read(read)

    async def list_changes(self, *, contract: str | None = None, state: str | None = None) -> list[ChangeRequest]:
        where, params = _filters(contract=contract, state=state)

        async def read(db: Connection) -> list[ChangeRequest]:
            ids = await _all(db, f"SELECT id FROM change_requests WHERE {where} ORDER BY created_at DESC", params)
            return [c for (cid,) in ids if (c := await _change(db, cid)) is not None]

        return await self._read(read)

    async def vote(self, change_id: str, vote: Vote, *, expected_row_version: int | None = None,
                   audit: Audit = None) -> tuple[ChangeRequest | None, str]:
        async def tx(db: Connection) -> tuple[ChangeRequest | None, str]:
            # the row lock makes concurrent votes take turns: each counts the votes committed before it
            current = await _change(db, change_id, lock=True)
            if current is None:
                return None, "missing"
            if expected_row_version is not None and current.row_version != expected_row_version:
                return current, "stale"
            if current.state != "open":
                return current, "closed"
            if any(v.voter == vote.voter for v in current.votes):
                return current, "duplicate"
            await db.execute("INSERT INTO votes (change_id, voter, decision, comment, at) VALUES (%s, %s, %s, %s, %s)",
                             (change_id, vote.voter, vote.decision, vote.comment, vote.at))
            approvals = 1 + sum(1 for v in current.votes if v.decision == "approve")
            state = "rejected" if vote.decision == "reject" else \
                "approved" if approvals >= current.required_approvals else "open"
            await db.execute("UPDATE change_requests SET state = %s, updated_at = %s, row_version = row_version + 1"
                             " WHERE id = %s", (state, _now(), change_id))
            if state != "open":
                await db.execute("UPDATE versions SET state = %s WHERE contract = %s AND version = %s"
                                 " AND state = 'in_review'", (state, current.contract, current.version))
            return await _change(db, change_id), "recorded"

        return await self._transaction(tx, when_vote_recorded(audit))

    async def close_change(self, change_id: str, state: str, *, expected: str, version_state: str,
                           audit: Audit = None) -> ChangeRequest | None:
        async def tx(db: Connection) -> ChangeRequest | None:
            current = await _change(db, change_id, lock=True)
            if current is None or current.state != expected:
                return None
            await db.execute("UPDATE change_requests SET state = %s, updated_at = %s, row_version = row_version + 1"
                             " WHERE id = %s", (state, _now(), change_id))
            await db.execute("UPDATE versions SET state = %s WHERE contract = %s AND version = %s",
                             (version_state, current.contract, current.version))
            return await _change(db, change_id)

        return await self._transaction(tx, when_present(audit))

    async def list_audit(self, *, target: str | None = None, actor: str | None = None, action: str | None = None,
                         limit: int = 1000, after_seq: int = 0) -> list[AuditRecord]:
        where, params = _filters(target=target, actor=actor, action=action)
        rows = await self._fetchall(f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE seq > %s AND {where}"
                                    " ORDER BY seq LIMIT %s", (after_seq, *params, limit))
        return [_audit_record(r) for r in rows]

    async def append_audit(self, entry: AuditEntry) -> None:
        async def nothing(db: Connection) -> None:
            return None

        await self._transaction(nothing, always(entry))

    async def audit_head(self) -> tuple[int, str] | None:
        row = await self._fetchone("SELECT seq, hash FROM audit_head WHERE id = 1", ())
        return (row[0], row[1]) if row else None

    async def get_changes(self, contract: str, version: str) -> str | None:
        row = await self._fetchone("SELECT changes FROM versions WHERE contract = %s AND version = %s",
                                   (contract, version))
        return row[0] if row else None

    async def get_version(self, contract: str, version: str) -> Version | None:
        query = f"SELECT {_VERSION_COLUMNS} FROM versions WHERE contract = %s AND version = %s"
        row = await self._fetchone(query, (contract, version))
        return _version(row) if row else None

    async def get_document(self, contract: str, version: str) -> str | None:
        row = await self._fetchone("SELECT document FROM versions WHERE contract = %s AND version = %s",
                                   (contract, version))
        return row[0] if row else None

    async def list_versions(self, contract: str) -> list[Version]:
        query = f"SELECT {_VERSION_COLUMNS} FROM versions WHERE contract = %s ORDER BY created_at, seq"
        return [_version(r) for r in await self._fetchall(query, (contract,))]

    async def set_state(self, contract: str, version: str, state: str, *, expected: str,
                        sunset: date | None = None, successor: str | None = None, audit: Audit = None
                        ) -> Version | None:
        async def tx(db: Connection) -> Version | None:
            if state == "published":  # it closes the change request too: lock that first, as votes do
                await db.execute("SELECT 1 FROM change_requests WHERE contract = %s AND version = %s FOR UPDATE",
                                 (contract, version))
            now = _now()
            # compare and set: of two concurrent moves from `expected`, the second matches no row
            row = await _one(
                db,
                "UPDATE versions SET state = %s, published_at = COALESCE(%s, published_at),"
                " deprecated_at = COALESCE(%s, deprecated_at), sunset = COALESCE(%s, sunset),"
                " successor = COALESCE(%s, successor) WHERE contract = %s AND version = %s AND state = %s"
                f" RETURNING {_VERSION_COLUMNS}",
                (state, now if state == "published" else None, now if state == "deprecated" else None, sunset,
                 successor, contract, version, expected))
            if row is None:
                return None
            if state == "published":
                await db.execute("UPDATE change_requests SET state = 'published', updated_at = %s, row_version ="
                                 " row_version + 1 WHERE contract = %s AND version = %s AND state = 'approved'",
                                 (now, contract, version))
            return _version(row)

        return await self._transaction(tx, when_present(audit))

    async def list_published(self) -> list[tuple[Contract, Version, str]]:
        columns = ", ".join(f"c.{c}" for c in _CONTRACT_COLUMNS.split(", "))
        columns += ", " + ", ".join(f"v.{c}" for c in _VERSION_COLUMNS.split(", ")) + ", v.document"
        rows = await self._fetchall(
            f"SELECT {columns} FROM versions v JOIN contracts c ON c.name = v.contract"
            " WHERE v.state IN ('published', 'deprecated', 'retired') ORDER BY c.name, v.major, v.created_at", ())
        return [(_contract(r[:8]), _version(r[8:21]), r[21]) for r in rows]

    async def put_plan(self, plan: Plan, *, audit: Audit = None) -> None:
        async def tx(db: Connection) -> None:
            await db.execute("INSERT INTO plans (name, definition) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET"
                             " definition = excluded.definition", (plan.name, msgspec.json.encode(plan).decode()))

        await self._transaction(tx, always(audit))

    async def list_plans(self) -> list[Plan]:
        rows = await self._fetchall("SELECT definition FROM plans ORDER BY name", ())
        return [msgspec.json.decode(r[0], type=Plan) for r in rows]

    async def create_consumer(self, new: NewConsumer, secret_hash: str, *, actor: str,
                              audit: Audit = None) -> tuple[Consumer, bool]:
        async def tx(db: Connection) -> tuple[Consumer, bool]:
            cursor = await db.execute(
                "INSERT INTO consumers (id, name, plan, scopes, secret_hash, created_at, created_by)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (new.id, new.name, new.plan, json.dumps(sorted(set(new.scopes))), secret_hash, _now(), actor))
            return await _consumer(db, new.id), cursor.rowcount == 1

        return await self._transaction(tx, when_created(audit))

    async def get_consumer(self, consumer_id: str) -> Consumer | None:
        async def read(db: Connection) -> Consumer | None:
            found = await _one(db, "SELECT 1 FROM consumers WHERE id = %s", (consumer_id,))
            return await _consumer(db, consumer_id) if found else None

        return await self._read(read)

    async def list_consumers(self) -> list[Consumer]:
        async def read(db: Connection) -> list[Consumer]:
            return [await _consumer(db, r[0]) for r in await _all(db, "SELECT id FROM consumers ORDER BY id", ())]

        return await self._read(read)

    async def consumer_secret_hash(self, consumer_id: str) -> str | None:
        row = await self._fetchone("SELECT secret_hash FROM consumers WHERE id = %s", (consumer_id,))
        return row[0] if row else None

    async def add_api_key(self, consumer_id: str, key_hash: str, *, audit: Audit = None) -> None:
        async def tx(db: Connection) -> None:
            await db.execute("INSERT INTO api_keys (key_hash, consumer, created_at) VALUES (%s, %s, %s)",
                             (key_hash, consumer_id, _now()))

        await self._transaction(tx, always(audit))

    async def api_keys(self) -> dict[str, str]:
        return dict(await self._fetchall("SELECT key_hash, consumer FROM api_keys", ()))

    async def set_subscription(self, consumer_id: str, contract: str, major: int, *, subscribed: bool,
                               audit: Audit = None) -> bool:
        async def tx(db: Connection) -> bool:
            if subscribed:
                cursor = await db.execute("INSERT INTO subscriptions (consumer, contract, major) VALUES (%s, %s, %s)"
                                          " ON CONFLICT DO NOTHING", (consumer_id, contract, major))
            else:
                cursor = await db.execute("DELETE FROM subscriptions WHERE consumer = %s AND contract = %s"
                                          " AND major = %s", (consumer_id, contract, major))
            return cursor.rowcount == 1

        return await self._transaction(tx, when_truthy(audit))

    async def record_usage(self, rows: list[Usage]) -> None:
        # every instance flushes its own counts: upsert in key order so two flushes never deadlock
        ordered = sorted(rows, key=lambda r: (r.contract, r.major, r.operation, r.consumer))

        async def tx(db: Connection) -> None:
            async with db.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO usage (consumer, contract, major, operation, count, errors, first_seen, last_seen)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (contract, major, operation, consumer)"
                    " DO UPDATE SET count = usage.count + excluded.count, errors = usage.errors + excluded.errors,"
                    " first_seen = LEAST(usage.first_seen, excluded.first_seen),"
                    " last_seen = GREATEST(usage.last_seen, excluded.last_seen)",
                    [(r.consumer, r.contract, r.major, r.operation, r.count, r.errors, r.first_seen, r.last_seen)
                     for r in ordered])

        if ordered:
            await self._transaction(tx)

    async def list_usage(self, contract: str) -> list[Usage]:
        rows = await self._fetchall(
            "SELECT consumer, contract, major, operation, count, errors, first_seen, last_seen FROM usage"
            " WHERE contract = %s ORDER BY major, operation, consumer", (contract,))
        return [Usage(consumer=r[0], contract=r[1], major=r[2], operation=r[3], count=r[4], errors=r[5],
                      first_seen=_utc(r[6]), last_seen=_utc(r[7])) for r in rows]

    async def record_verification(self, contract: str, version: str, new: NewVerification, *, actor: str,
                                  audit: Audit = None) -> Verification:
        at = _now()

        async def tx(db: Connection) -> Verification:
            await db.execute("INSERT INTO verifications (contract, version, environment, passed, base_url, summary,"
                             " report, recorded_at, recorded_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                             (contract, version, new.environment, new.passed, new.base_url, new.summary,
                              json_text(new.report) if new.report is not None else None, at, actor))
            return Verification(contract=contract, version=version, environment=new.environment, passed=new.passed,
                                base_url=new.base_url, summary=new.summary, recorded_at=at, recorded_by=actor)

        return await self._transaction(tx, always(audit))

    async def list_verifications(self, contract: str, version: str) -> list[Verification]:
        rows = await self._fetchall(
            "SELECT contract, version, environment, passed, base_url, summary, recorded_at, recorded_by"
            " FROM verifications WHERE contract = %s AND version = %s ORDER BY id DESC", (contract, version))
        return [Verification(contract=r[0], version=r[1], environment=r[2], passed=r[3], base_url=r[4],
                             summary=r[5], recorded_at=_utc(r[6]), recorded_by=r[7]) for r in rows]

    async def create_webhook(self, webhook: Webhook, *, audit: Audit = None) -> None:
        async def tx(db: Connection) -> None:
            await db.execute("INSERT INTO webhooks (id, url, events, created_at, created_by) VALUES (%s, %s, %s, %s,"
                             " %s)", (webhook.id, webhook.url, json.dumps(webhook.events), webhook.created_at,
                                      webhook.created_by))

        await self._transaction(tx, always(audit))

    async def list_webhooks(self) -> list[Webhook]:
        rows = await self._fetchall("SELECT id, url, events, created_at, created_by FROM webhooks ORDER BY created_at",
                                    ())
        return [Webhook(id=r[0], url=r[1], events=json.loads(r[2]), created_at=_utc(r[3]), created_by=r[4])
                for r in rows]

    async def delete_webhook(self, webhook_id: str, *, audit: Audit = None) -> bool:
        async def tx(db: Connection) -> bool:
            await db.execute("DELETE FROM deliveries WHERE webhook = %s", (webhook_id,))
            return (await db.execute("DELETE FROM webhooks WHERE id = %s", (webhook_id,))).rowcount == 1

        return await self._transaction(tx, when_truthy(audit))

    async def due_deliveries(self, now: datetime, limit: int) -> list[tuple[Delivery, str, bytes]]:
        async def tx(db: Connection) -> list[tuple[Delivery, str, bytes]]:
            # SKIP LOCKED: several gateway instances share the work without sending anything twice
            rows = await _all(db, f"SELECT {_DELIVERY_COLUMNS}, w.url, d.payload FROM deliveries d JOIN webhooks w"
                                  " ON w.id = d.webhook WHERE d.state = 'pending' AND d.next_attempt_at <= %s"
                                  " ORDER BY d.id LIMIT %s FOR UPDATE OF d SKIP LOCKED", (now, limit))
            for row in rows:  # a lease: a worker that dies leaves them to be tried again a minute later
                await db.execute("UPDATE deliveries SET next_attempt_at = %s WHERE id = %s",
                                 (now + timedelta(seconds=60), row[0]))
            return [(_delivery(r[:11]), r[11], r[12].encode()) for r in rows]

        return await self._transaction(tx)

    async def mark_delivery(self, delivery_id: int, state: str, attempts: int, next_attempt_at: datetime | None,
                            status: int | None, error: str) -> None:
        async def tx(db: Connection) -> None:
            await db.execute("UPDATE deliveries SET state = %s, attempts = %s, next_attempt_at = %s, last_status = %s,"
                             " last_error = %s, delivered_at = CASE WHEN %s = 'delivered' THEN now() ELSE delivered_at"
                             " END WHERE id = %s", (state, attempts, next_attempt_at, status, error, state, delivery_id))

        await self._transaction(tx)

    async def list_deliveries(self, webhook_id: str, limit: int = 200) -> list[Delivery]:
        rows = await self._fetchall(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d WHERE d.webhook = %s"
                                    " ORDER BY d.id DESC LIMIT %s", (webhook_id, limit))
        return [_delivery(r) for r in rows]

    async def _transaction(self, fn: Callable[[Connection], Awaitable[T]],
                           audit: Callable[[T], list[AuditEntry]] | None = None) -> T:
        """Run fn in one READ COMMITTED transaction; the audit records it yields are chained in the same one."""
        correlation = audit_log.correlation_id.get()

        async def run(db: Connection) -> T:
            result = await fn(db)
            for entry in audit(result) if audit else []:
                await _append(db, entry, correlation)
            return result

        return await self._in_transaction(run, read_only=False)

    async def _read(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run a read of several statements on one snapshot (REPEATABLE READ, READ ONLY)."""
        return await self._in_transaction(fn, read_only=True)

    async def _in_transaction(self, fn: Callable[[Connection], Awaitable[T]], *, read_only: bool) -> T:
        for attempt in range(1, RETRIES + 1):
            try:
                async with self._connection() as db:
                    # pooled connections keep these: set them on every use
                    await db.set_read_only(read_only)
                    await db.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ if read_only
                                                 else psycopg.IsolationLevel.READ_COMMITTED)
                    async with db.transaction():
                        return await fn(db)
            except (DeadlockDetected, SerializationFailure):
                if attempt == RETRIES:
                    raise
            except psycopg.DataError as exc:
                if "NUL" in str(exc):  # SQLite stores U+0000 in text, PostgreSQL refuses it
                    raise InvalidRequest("text fields cannot contain NUL (U+0000) characters") from None
                raise
            except (psycopg.OperationalError, PoolTimeout):
                # the server is down or unreachable: the transaction did not commit, so nothing changed
                raise StoreUnavailable() from None
        raise AssertionError("unreachable")

    async def _fetchone(self, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        return await self._read(lambda db: _one(db, query, params))

    async def _fetchall(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return await self._read(lambda db: _all(db, query, params))

    def _connection(self) -> Any:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool.connection()


async def _configure(db: Connection) -> None:
    # json columns come back as their stored text and are decoded exactly as the SQLite store decodes them
    db.adapters.register_loader("json", TextLoader)


async def _migrate(db: Connection) -> None:
    """Apply pending migrations; a session advisory lock makes concurrent starters take turns."""
    await db.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        await db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                         " applied_at TIMESTAMPTZ NOT NULL)")
        applied = {r[0] for r in await _all(db, "SELECT version FROM schema_migrations", ())}
        for number, sql in MIGRATIONS:
            if number in applied:
                continue
            async with db.transaction():
                await db.execute(sql)  # no parameters: several statements in one go
                await db.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                                 (number, _now()))
    finally:
        await db.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


async def _one(db: Connection, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    return await (await db.execute(query, params)).fetchone()


async def _all(db: Connection, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return await (await db.execute(query, params)).fetchall()


def _filters(**equal: str | None) -> tuple[str, tuple[Any, ...]]:
    """`a = %s AND b = %s` for the filters given (TRUE for none), with their values."""
    given = {column: value for column, value in equal.items() if value is not None}
    return " AND ".join(f"{column} = %s" for column in given) or "TRUE", tuple(given.values())


async def _append(db: Connection, entry: AuditEntry, correlation: str) -> None:
    # the head's row lock is held until commit: appends from every instance queue here, in order
    seq, prev_hash = await _one(db, "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE", ())
    seq, at = seq + 1, _now()
    digest = audit_log.record_hash(seq, audit_log.timestamp(at), entry, correlation, prev_hash)
    await db.execute(f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                     (seq, at, entry.actor, entry.action, entry.target,
                      None if entry.before is None else json_text(entry.before),
                      None if entry.after is None else json_text(entry.after), entry.reason, correlation, prev_hash,
                      digest))
    await db.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", (seq, digest))
    if entry.action in webhooks.EVENT_TYPES:  # the outbox: deliveries commit with the change they announce
        event = webhooks.cloud_event(seq, entry.action, entry.target, entry.actor, entry.after, entry.reason,
                                     correlation, audit_log.timestamp(at))
        payload = json.dumps(event, sort_keys=True, default=str)
        for hook_id, events in await _all(db, "SELECT id, events FROM webhooks", ()):
            if event["type"] in json.loads(events):
                await db.execute("INSERT INTO deliveries (webhook, event_id, event_type, payload, state, attempts,"
                                 " next_attempt_at, last_error, created_at) VALUES (%s, %s, %s, %s, 'pending', 0, %s,"
                                 " '', %s)", (hook_id, event["id"], event["type"], payload, at, at))


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # whatever the session's TimeZone, hand out UTC like the SQLite store (its hashes and JSON depend on it)
    return value.astimezone(UTC)


def _delivery(row: tuple[Any, ...]) -> Delivery:
    (delivery_id, webhook, event_id, event_type, state, attempts, next_at, status, error, created,
     delivered) = row
    return Delivery(id=delivery_id, webhook=webhook, event_id=event_id, event_type=event_type, state=state,
                    attempts=attempts, next_attempt_at=_utc(next_at) if next_at else None, last_status=status,
                    last_error=error, created_at=_utc(created), delivered_at=_utc(delivered) if delivered else None)


def _audit_record(row: tuple[Any, ...]) -> AuditRecord:
    seq, at, actor, action, target, before, after, reason, correlation, prev_hash, digest = row
    return AuditRecord(seq=seq, at=_utc(at), actor=actor, action=action, target=target,
                       before=json.loads(before) if before else None, after=json.loads(after) if after else None,
                       reason=reason, correlation_id=correlation, prev_hash=prev_hash, hash=digest)


async def _change(db: Connection, change_id: str, *, lock: bool = False) -> ChangeRequest | None:
    row = await _one(db, f"SELECT {_CHANGE_COLUMNS} FROM change_requests WHERE id = %s"
                         + (" FOR UPDATE" if lock else ""), (change_id,))
    if row is None:
        return None
    votes = [Vote(voter=v, decision=d, comment=c, at=_utc(a)) for v, d, c, a in await _all(
        db, "SELECT voter, decision, comment, at FROM votes WHERE change_id = %s ORDER BY at, voter", (change_id,))]
    (cid, contract, version, base, state, proposer, team, required, bump, findings, changes, lint, affected,
     created, updated, row_version) = row
    return ChangeRequest(
        id=cid, contract=contract, version=version, base_version=base, state=state, proposer=proposer,
        proposer_team=team, required_approvals=required, required_bump=bump, findings=json.loads(findings),
        changes=json.loads(changes) if changes else None, lint=json.loads(lint) if lint else None,
        affected_consumers=msgspec.json.decode(affected, type=list[AffectedConsumer]), votes=votes,
        created_at=_utc(created), updated_at=_utc(updated), row_version=row_version)


async def _consumer(db: Connection, consumer_id: str) -> Consumer:
    row = await _one(db, "SELECT id, name, plan, scopes, created_at, created_by FROM consumers WHERE id = %s",
                     (consumer_id,))
    subscriptions = [Subscription(contract=c, major=m) for c, m in await _all(
        db, "SELECT contract, major FROM subscriptions WHERE consumer = %s ORDER BY contract, major", (consumer_id,))]
    return Consumer(id=row[0], name=row[1], plan=row[2], scopes=json.loads(row[3]), subscriptions=subscriptions,
                    created_at=_utc(row[4]), created_by=row[5])


def _contract(row: tuple[Any, ...]) -> Contract:
    name, kind, owner, description, upstream, created_at, created_by, compatibility = row
    return Contract(name=name, kind=kind, owner=owner, description=description, upstream=upstream,
                    created_at=_utc(created_at), created_by=created_by, compatibility=compatibility)


def _version(row: tuple[Any, ...]) -> Version:
    (contract, version, major, sha, state, created_at, created_by, published_at, base_version, bump,
     deprecated_at, sunset, successor) = row
    return Version(contract=contract, version=version, major=major, sha256=sha, state=state,
                   created_at=_utc(created_at), created_by=created_by,
                   published_at=_utc(published_at) if published_at else None,
                   base_version=base_version, required_bump=bump,
                   deprecated_at=_utc(deprecated_at) if deprecated_at else None,
                   sunset=sunset, successor=successor)
