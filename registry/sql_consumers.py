"""The gateway's directory in SQL: plans, consumers, their API keys and subscriptions, and their usage."""

from __future__ import annotations

import json

import msgspec

from registry import sql_rows as rows
from registry.audit import AuditEntry, always, when_created, when_truthy
from registry.model import Consumer, NewConsumer, Plan, Subscription, Usage
from registry.sql_base import Db, SQLBase, now, the_row

Audit = AuditEntry | None


class SQLConsumers(SQLBase):
    """Who may call what, and who did."""

    async def put_plan(self, plan: Plan, *, audit: Audit = None) -> None:
        """Create or replace a plan."""
        async def tx(db: Db) -> None:
            await db.execute("INSERT INTO plans (name, definition) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET"
                             " definition = excluded.definition", (plan.name, msgspec.json.encode(plan).decode()))

        await self._transaction(tx, always(audit))

    async def list_plans(self) -> list[Plan]:
        """Every plan, by name."""
        found = await self._fetchall("SELECT definition FROM plans ORDER BY name")
        return [msgspec.json.decode(r[0], type=Plan) for r in found]

    async def create_consumer(self, new: NewConsumer, secret_hash: str, *, actor: str,
                              audit: Audit = None) -> tuple[Consumer, bool]:
        """Insert a consumer; (existing, False) when the id is taken."""
        async def tx(db: Db) -> tuple[Consumer, bool]:
            inserted = await db.execute(
                "INSERT INTO consumers (id, name, plan, scopes, secret_hash, created_at, created_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (new.id, new.name, new.plan, json.dumps(sorted(set(new.scopes))), secret_hash, now(), actor))
            return await _consumer(db, new.id), inserted == 1

        return await self._transaction(tx, when_created(audit))

    async def get_consumer(self, consumer_id: str) -> Consumer | None:
        """One consumer with its subscriptions."""
        async def read(db: Db) -> Consumer | None:
            found = await db.one("SELECT 1 FROM consumers WHERE id = ?", (consumer_id,))
            return await _consumer(db, consumer_id) if found else None

        return await self._read(read)

    async def list_consumers(self) -> list[Consumer]:
        """Every consumer, by id."""
        async def read(db: Db) -> list[Consumer]:
            return [await _consumer(db, r[0]) for r in await db.all("SELECT id FROM consumers ORDER BY id")]

        return await self._read(read)

    async def consumer_secret_hash(self, consumer_id: str) -> str | None:
        """The stored hash of a consumer's client secret."""
        row = await self._fetchone("SELECT secret_hash FROM consumers WHERE id = ?", (consumer_id,))
        return row[0] if row else None

    async def add_api_key(self, consumer_id: str, key_hash: str, *, audit: Audit = None) -> None:
        """Store the hash of a new API key."""
        async def tx(db: Db) -> None:
            await db.execute("INSERT INTO api_keys (key_hash, consumer, created_at) VALUES (?, ?, ?)",
                             (key_hash, consumer_id, now()))

        await self._transaction(tx, always(audit))

    async def api_keys(self) -> dict[str, str]:
        """API key hash → consumer id."""
        return {key: consumer for key, consumer in await self._fetchall("SELECT key_hash, consumer FROM api_keys")}

    async def set_subscription(self, consumer_id: str, contract: str, major: int, *, subscribed: bool,
                               audit: Audit = None) -> bool:
        """Add or remove a subscription; whether anything changed."""
        async def tx(db: Db) -> bool:
            if subscribed:
                changed = await db.execute("INSERT INTO subscriptions (consumer, contract, major) VALUES (?, ?, ?)"
                                           " ON CONFLICT DO NOTHING", (consumer_id, contract, major))
            else:
                changed = await db.execute("DELETE FROM subscriptions WHERE consumer = ? AND contract = ?"
                                           " AND major = ?", (consumer_id, contract, major))
            return changed == 1

        return await self._transaction(tx, when_truthy(audit))

    async def record_usage(self, usage: list[Usage]) -> None:
        """Add calls to the usage records (counts add up, first/last seen widen)."""
        # every instance flushes its own counts: upsert in key order so two flushes never deadlock
        ordered = sorted(usage, key=lambda r: (r.contract, r.major, r.operation, r.consumer))

        async def tx(db: Db) -> None:
            await db.executemany(
                f"INSERT INTO usage ({rows.USAGE_COLUMNS}) VALUES ({rows.placeholders(rows.USAGE_COLUMNS)})"
                " ON CONFLICT (contract, major, operation, consumer) DO UPDATE SET"
                " count = usage.count + excluded.count, errors = usage.errors + excluded.errors,"
                f" first_seen = {self.least}(usage.first_seen, excluded.first_seen),"
                f" last_seen = {self.greatest}(usage.last_seen, excluded.last_seen)",
                [(r.consumer, r.contract, r.major, r.operation, r.count, r.errors, r.first_seen, r.last_seen)
                 for r in ordered])

        if ordered:
            await self._transaction(tx)

    async def list_usage(self, contract: str) -> list[Usage]:
        """Who called which operation of a contract."""
        found = await self._fetchall(f"SELECT {rows.USAGE_COLUMNS} FROM usage WHERE contract = ?"
                                     " ORDER BY major, operation, consumer", (contract,))
        return [rows.usage(r) for r in found]


async def _consumer(db: Db, consumer_id: str) -> Consumer:
    row = await the_row(db, "SELECT id, name, plan, scopes, created_at, created_by FROM consumers WHERE id = ?",
                        (consumer_id,))
    subscriptions = [Subscription(contract=c, major=m) for c, m in await db.all(
        "SELECT contract, major FROM subscriptions WHERE consumer = ? ORDER BY contract, major", (consumer_id,))]
    return Consumer(id=row[0], name=row[1], plan=row[2], scopes=json.loads(row[3]), subscriptions=subscriptions,
                    created_at=rows.moment(row[4]), created_by=row[5])
