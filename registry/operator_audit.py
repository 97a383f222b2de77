"""Audit records of operator actions that change no registry row (replaying dead letters, rewinding groups).

The Store protocol records audit entries only alongside a change of its own. These actions change
Redis, not the store, so this module appends the entry through each backend's own transaction
helper: the record is hash-chained, carries the request's correlation id and shows in
`GET /registry/audit` exactly like every other.
"""

from __future__ import annotations

from typing import Any

from registry.audit import AuditEntry
from registry.postgres_store import PostgresStore
from registry.sqlite_store import SQLiteStore


def _sqlite_nothing(db: Any) -> None:
    return None


async def _postgres_nothing(db: Any) -> None:
    return None


# the transaction body each backend's `_transaction` expects (SQLite: a function, PostgreSQL: a coroutine)
NOTHING = {SQLiteStore: _sqlite_nothing, PostgresStore: _postgres_nothing}


async def record(store: Any, entry: AuditEntry) -> None:
    """Append one audit entry in a transaction of its own."""
    body = NOTHING.get(type(store))
    if body is None:
        raise TypeError(f"cannot write audit records to a {type(store).__name__}")
    await store._transaction(body, lambda _: [entry])  # noqa: SLF001 - the backends' one way to chain a record
