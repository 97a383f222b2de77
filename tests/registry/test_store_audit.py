"""Operator actions that change no store row (event replays) are chained into the audit log on both backends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from registry.audit import AuditEntry, correlation_id
from registry.service import Registry
from registry.store import open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/registry.db"
    return request.getfixturevalue("postgres_store_url")


def test_a_recorded_operator_action_is_chained_like_every_audit_record(store_url: str) -> None:
    async def main() -> None:
        store = open_store(store_url)
        await store.open()
        try:
            registry = Registry(store)
            correlation_id.set("corr-42")
            await store.append_audit(AuditEntry(
                actor="ops", action="events.dead-letter-replayed", target="events/x/v1/dead-letters/1-0",
                after={"outcome": "appended"}, reason="after the fix"))
            await store.append_audit(AuditEntry(actor="ops", action="events.group-rewound",
                                                target="events/x/v1/groups/g"))
            records = await registry.audit(action="events.dead-letter-replayed")
            assert [(r.actor, r.reason, r.after, r.correlation_id) for r in records] == [
                ("ops", "after the fix", {"outcome": "appended"}, "corr-42")]
            verification = await registry.verify_audit()
            assert verification.ok and verification.records == 2
        finally:
            await store.close()

    asyncio.run(main())

