"""The registry store in SQL, for every dialect: transactions, the audit chain and its webhook outbox.

The store is one class chain, `SQLBase` → `SQLConsumers` (sql_consumers.py) → `SQLStore`
(sql_store.py); a dialect (`registry/sqlite_store.py`, `registry/postgres_store.py`) subclasses
`SQLStore` with its migrations, its connection and its transactions, and says how it locks:

- SQLite has one writer at a time (`BEGIN IMMEDIATE`): reading then writing is safe as it is;
- PostgreSQL serves several registry instances at once, so a read-decide-write locks its row
  first (`FOR UPDATE`), in one order (change request, version, audit head) so that writers
  never deadlock.

On both, creations insert `ON CONFLICT DO NOTHING` and read back whichever row won, and state
changes compare and set (`UPDATE … WHERE state = expected`). Every method is one transaction;
the audit records a change yields are chained in the same one, and the webhook deliveries they
announce are written alongside (the outbox)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from registry import audit as audit_log
from registry import sql_rows as rows
from registry import webhooks
from registry.audit import AuditEntry, AuditRecord, AuditRule
from registry.sql_rows import Row
from registry.webhooks import Delivery, Webhook

T = TypeVar("T")


class Db(Protocol):
    """A dialect's connection inside a transaction; queries use `?` placeholders."""

    async def one(self, query: str, params: tuple[Any, ...] = ()) -> Row | None:
        """The first row, or None."""

    async def all(self, query: str, params: tuple[Any, ...] = ()) -> list[Row]:
        """Every row."""

    async def execute(self, query: str, params: tuple[Any, ...] = ()) -> int:
        """Run a statement; how many rows it changed."""

    async def executemany(self, query: str, params: list[tuple[Any, ...]]) -> None:
        """Run a statement once per parameter tuple."""


class SQLBase:
    """Persistence over a dialect: subclasses open, close and run transactions."""

    for_update = ""
    """The lock a read-decide-write takes on its row (none where the transaction locks everything)."""
    skip_locked = ""
    """How due deliveries are claimed so that instances never send one twice."""
    insertion_order = "rowid"
    """The column that orders rows inserted in the same microsecond."""
    least, greatest = "MIN", "MAX"
    """The two-argument minimum and maximum functions."""

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release connections."""
        raise NotImplementedError

    async def _in_transaction(self, fn: Callable[[Db], Awaitable[T]], *, read_only: bool) -> T:
        """Run fn in one transaction (a snapshot when read_only)."""
        raise NotImplementedError

    async def _transaction(self, fn: Callable[[Db], Awaitable[T]], audit: AuditRule = None) -> T:
        """Run fn in one transaction; the audit records it yields are chained in the same one."""
        correlation = audit_log.correlation_id.get()

        async def run(db: Db) -> T:
            result = await fn(db)
            for entry in audit(result) if audit else []:
                await self._append(db, entry, correlation)
            return result

        return await self._in_transaction(run, read_only=False)

    async def _read(self, fn: Callable[[Db], Awaitable[T]]) -> T:
        """Run a read of several statements on one snapshot."""
        return await self._in_transaction(fn, read_only=True)

    async def _fetchone(self, query: str, params: tuple[Any, ...] = ()) -> Row | None:
        return await self._read(lambda db: db.one(query, params))

    async def _fetchall(self, query: str, params: tuple[Any, ...] = ()) -> list[Row]:
        return await self._read(lambda db: db.all(query, params))

    async def _append(self, db: Db, entry: AuditEntry, correlation: str) -> None:
        # the head's row lock is held until commit: appends from every instance queue here, in order
        head = await db.one(f"SELECT seq, hash FROM audit_head WHERE id = 1{self.for_update}")
        seq, prev_hash = head or (0, audit_log.GENESIS)
        seq, at = seq + 1, now()
        digest = audit_log.record_hash(seq, audit_log.timestamp(at), entry, correlation, prev_hash)
        await db.execute(f"INSERT INTO audit ({rows.AUDIT_COLUMNS}) VALUES ({rows.placeholders(rows.AUDIT_COLUMNS)})",
                         (seq, at, entry.actor, entry.action, entry.target, nullable_json(entry.before),
                          nullable_json(entry.after), entry.reason, correlation, prev_hash, digest))
        await db.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                         " seq = excluded.seq, hash = excluded.hash", (seq, digest))
        if entry.action in webhooks.EVENT_TYPES:  # the outbox: deliveries commit with the change they announce
            event = webhooks.cloud_event(seq, entry.action, entry.target, entry.actor, entry.after, entry.reason,
                                         correlation, audit_log.timestamp(at))
            payload = json.dumps(event, sort_keys=True, default=str)
            for hook_id, events in await db.all("SELECT id, events FROM webhooks"):
                if event["type"] in json.loads(events):
                    await db.execute("INSERT INTO deliveries (webhook, event_id, event_type, payload, state, attempts,"
                                     " next_attempt_at, last_error, created_at) VALUES (?, ?, ?, ?, 'pending', 0, ?,"
                                     " '', ?)", (hook_id, event["id"], event["type"], payload, at, at))

    async def append_audit(self, entry: AuditEntry) -> None:
        """Chain an audit record for an action that changes no row here (an operator's replay, say)."""
        async def nothing(db: Db) -> None:
            return None

        await self._transaction(nothing, audit_log.always(entry))

    async def audit_head(self) -> tuple[int, str] | None:
        """The last record's sequence number and hash."""
        row = await self._fetchone("SELECT seq, hash FROM audit_head WHERE id = 1")
        return (row[0], row[1]) if row else None

    async def list_audit(self, *, target: str | None = None, actor: str | None = None, action: str | None = None,
                         limit: int = 1000, after_seq: int = 0) -> list[AuditRecord]:
        """Audit records after a sequence number, oldest first, filtered by target, actor or action."""
        where, params = filters(target=target, actor=actor, action=action)
        found = await self._fetchall(f"SELECT {rows.AUDIT_COLUMNS} FROM audit WHERE seq > ? AND {where}"
                                     " ORDER BY seq LIMIT ?", (after_seq, *params, limit))
        return [rows.audit_record(r) for r in found]

    async def create_webhook(self, webhook: Webhook, *, audit: AuditEntry | None = None) -> None:
        """Subscribe a URL to workflow events."""
        async def tx(db: Db) -> None:
            await db.execute(f"INSERT INTO webhooks ({rows.WEBHOOK_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                             (webhook.id, webhook.url, json.dumps(webhook.events), webhook.created_at,
                              webhook.created_by))

        await self._transaction(tx, audit_log.always(audit))

    async def list_webhooks(self) -> list[Webhook]:
        """Every webhook, oldest first."""
        found = await self._fetchall(f"SELECT {rows.WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at")
        return [rows.webhook(r) for r in found]

    async def delete_webhook(self, webhook_id: str, *, audit: AuditEntry | None = None) -> bool:
        """Drop a webhook and its deliveries; whether it existed."""
        async def tx(db: Db) -> bool:
            await db.execute("DELETE FROM deliveries WHERE webhook = ?", (webhook_id,))
            return await db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)) == 1

        return await self._transaction(tx, audit_log.when_truthy(audit))

    async def due_deliveries(self, at: datetime, limit: int) -> list[tuple[Delivery, str, bytes]]:
        """Claim the deliveries due at `at` for a minute: each with its webhook's URL and its payload."""
        async def tx(db: Db) -> list[tuple[Delivery, str, bytes]]:
            due = await db.all(f"SELECT {rows.DELIVERY_COLUMNS}, w.url, d.payload FROM deliveries d JOIN webhooks w"
                               " ON w.id = d.webhook WHERE d.state = 'pending' AND d.next_attempt_at <= ?"
                               f" ORDER BY d.id LIMIT ?{self.skip_locked}", (at, limit))
            # a lease: another worker leaves them alone, and one that dies leaves them to be tried again
            lease = at + timedelta(seconds=60)
            await db.executemany("UPDATE deliveries SET next_attempt_at = ? WHERE id = ?", [(lease, r[0]) for r in due])
            return [(rows.delivery(r[:11]), r[11], r[12].encode()) for r in due]

        return await self._transaction(tx)

    async def mark_delivery(self, delivery_id: int, state: str, attempts: int, next_attempt_at: datetime | None,
                            status: int | None, error: str) -> None:
        """Record the outcome of an attempt."""
        async def tx(db: Db) -> None:
            await db.execute("UPDATE deliveries SET state = ?, attempts = ?, next_attempt_at = ?, last_status = ?,"
                             " last_error = ?, delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END"
                             " WHERE id = ?", (state, attempts, next_attempt_at, status, error, state, now(),
                                                delivery_id))

        await self._transaction(tx)

    async def list_deliveries(self, webhook_id: str, limit: int = 200) -> list[Delivery]:
        """A webhook's deliveries, newest first."""
        found = await self._fetchall(f"SELECT {rows.DELIVERY_COLUMNS} FROM deliveries d WHERE d.webhook = ?"
                                     " ORDER BY d.id DESC LIMIT ?", (webhook_id, limit))
        return [rows.delivery(r) for r in found]


def now() -> datetime:
    return datetime.now(UTC)


async def the_row(db: Db, query: str, params: tuple[Any, ...]) -> Row:
    """The row a query must find (one another transaction inserted, say)."""
    row = await db.one(query, params)
    if row is None:
        raise LookupError(f"no row for {query}")
    return row


def json_text(value: Any) -> str:
    """A JSON column's text: sorted keys, so both backends store the same bytes."""
    return json.dumps(value, sort_keys=True, default=str)


def nullable_json(value: Any) -> str | None:
    return None if value is None else json_text(value)


def filters(**equal: str | None) -> tuple[str, tuple[Any, ...]]:
    """`a = ? AND b = ?` for the filters given (TRUE for none), with their values."""
    given = {column: value for column, value in equal.items() if value is not None}
    return " AND ".join(f"{column} = ?" for column in given) or "TRUE", tuple(given.values())
