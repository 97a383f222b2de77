"""Two registry instances on one PostgreSQL database, racing: the locks must leave one outcome.

Each race runs through two `PostgresStore`s (two pools, as two registry processes would have).
A gate holds the audit head's row lock while both writers start: the first gets as far as
its audit record and queues there, the second queues on whatever lock the first holds. Only
when the database shows both waiting does the gate open, so every race really overlaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any, TypeVar

import psycopg
import pytest

from registry.approvals import ApprovalPolicy
from registry.errors import Conflict
from registry.model import NewContract
from registry.postgres_store import MIGRATIONS, PostgresStore
from registry.service import Registry

T = TypeVar("T")
CONTRACT = NewContract(name="erp.sales-orders", kind="openapi", owner="team-erp", upstream="erp")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture()
def orders(catalog: list[dict]) -> dict[str, Any]:
    return copy.deepcopy(next(e for e in catalog if e["name"] == "erp.sales-orders")["loaded"])


@contextlib.asynccontextmanager
async def two_registries(url: str, *, approvals: int = 1) -> AsyncIterator[tuple[Registry, Registry]]:
    """Two registries, each with a store (and pool) of its own, on the same database."""
    policy = ApprovalPolicy(first_version=approvals)
    stores = [PostgresStore(url), PostgresStore(url)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        yield Registry(stores[0], approvals=policy), Registry(stores[1], approvals=policy)
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def race(url: str, *writers: Awaitable[T]) -> list[T | BaseException]:
    """Start the writers while the audit head is locked; let them go once all are waiting on locks."""
    async with await psycopg.AsyncConnection.connect(url) as gate:
        await gate.execute("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE")
        tasks = [asyncio.ensure_future(w) for w in writers]
        deadline = time.monotonic() + 10
        while await waiting_on_locks(gate) < len(tasks):
            done = [t for t in tasks if t.done()]
            assert not done, f"a writer finished before the gate opened: {[t.exception() or t.result() for t in done]}"
            assert time.monotonic() < deadline, "the writers never queued on the locks"
            await asyncio.sleep(0.01)
        await gate.rollback()  # open the gate
    return await asyncio.gather(*tasks, return_exceptions=True)


async def waiting_on_locks(db: psycopg.AsyncConnection[Any]) -> int:
    cursor = await db.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                              " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
    return (await cursor.fetchone())[0]


async def proposed(registry: Registry, document: dict[str, Any]) -> str:
    """The contract registered and its first version proposed; the change request's id."""
    await registry.create_contract(CONTRACT, actor="ian")
    _, created, change = await registry.add_version(CONTRACT.name, document, version=None, actor="ian", team="team-erp")
    assert created and change is not None and change.state == "open"
    return change.id


def approve(registry: Registry, change_id: str, voter: str) -> Awaitable[Any]:
    return registry.vote(change_id, "approve", f"ok from {voter}", voter=voter, team="governance")


def test_two_approvals_at_once_on_a_change_that_needs_two(postgres_store_url: str, orders: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with two_registries(postgres_store_url, approvals=2) as (a, b):
            change_id = await proposed(a, orders)
            results = await race(postgres_store_url, approve(a, change_id, "board-1"), approve(b, change_id, "board-2"))
            assert not [r for r in results if isinstance(r, BaseException)], results
            assert sorted(r.state for r in results) == ["approved", "open"]  # the second saw the first's vote
            change = await b.change(change_id)
            assert change.state == "approved" and change.row_version == 3
            assert sorted(v.voter for v in change.votes) == ["board-1", "board-2"]
            assert (await a.version(CONTRACT.name, "1.0.0")).state == "approved"
            actions = [r.action for r in await a.audit(target=f"change/{change_id}")]
            assert sorted(actions) == ["change.approve-vote", "change.approve-vote", "change.approved"]
            assert actions[-1] == "change.approved"
            assert (await b.verify_audit()).ok

    run(scenario())


def test_two_approvals_at_once_on_a_change_that_needs_one(postgres_store_url: str, orders: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with two_registries(postgres_store_url, approvals=1) as (a, b):
            change_id = await proposed(a, orders)
            results = await race(postgres_store_url, approve(a, change_id, "board-1"), approve(b, change_id, "board-2"))
            approved = [r for r in results if not isinstance(r, BaseException)]
            refused = [r for r in results if isinstance(r, BaseException)]
            assert len(approved) == 1 and approved[0].state == "approved"
            assert len(refused) == 1 and isinstance(refused[0], Conflict) and "is approved" in str(refused[0])
            change = await b.change(change_id)
            assert change.state == "approved" and len(change.votes) == 1 and change.row_version == 2
            actions = [r.action for r in await a.audit(target=f"change/{change_id}")]
            assert actions == ["change.approve-vote", "change.approved"]  # approved once, never twice
            assert (await b.verify_audit()).ok

    run(scenario())


def test_two_publishes_at_once(postgres_store_url: str, orders: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with two_registries(postgres_store_url, approvals=1) as (a, b):
            change_id = await proposed(a, orders)
            await approve(a, change_id, "board-1")
            results = await race(postgres_store_url, a.publish(CONTRACT.name, "1.0.0", actor="ada"),
                                 b.publish(CONTRACT.name, "1.0.0", actor="bob"))
            published = [r for r in results if not isinstance(r, BaseException)]
            refused = [r for r in results if isinstance(r, BaseException)]
            assert len(published) == 1 and published[0].state == "published"
            # both read "approved"; the second's compare-and-set matched no row
            assert len(refused) == 1 and isinstance(refused[0], Conflict) and "meanwhile" in str(refused[0])
            change = await b.change(change_id)
            assert change.state == "published" and change.row_version == 3
            actions = [r.action for r in await a.audit(target=f"{CONTRACT.name}@1.0.0")]
            assert actions == ["version.proposed", "version.published"]
            assert (await b.verify_audit()).ok

    run(scenario())


def test_two_proposals_of_the_same_version_with_the_same_content(postgres_store_url: str,
                                                                  orders: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with two_registries(postgres_store_url) as (a, b):
            await a.create_contract(CONTRACT, actor="ian")
            results = await race(postgres_store_url, a.add_version(CONTRACT.name, orders, version=None, actor="ian"),
                                 b.add_version(CONTRACT.name, copy.deepcopy(orders), version=None, actor="ivy"))
            assert not [r for r in results if isinstance(r, BaseException)], results
            assert sorted(created for _, created, _ in results) == [False, True]  # one created, one existing
            assert len({version.sha256 for version, _, _ in results}) == 1
            assert len({change.id for _, _, change in results}) == 1  # one change request, shown to both
            assert len(await a.store.list_changes(contract=CONTRACT.name)) == 1
            actions = [r.action for r in await b.audit(target=f"{CONTRACT.name}@1.0.0")]
            assert actions == ["version.proposed"]
            assert (await b.verify_audit()).ok

    run(scenario())


def test_two_proposals_of_the_same_version_with_other_content(postgres_store_url: str,
                                                               orders: dict[str, Any]) -> None:
    async def scenario() -> None:
        other = copy.deepcopy(orders)
        other["info"]["title"] = "Sales orders, retitled"
        async with two_registries(postgres_store_url) as (a, b):
            await a.create_contract(CONTRACT, actor="ian")
            results = await race(postgres_store_url, a.add_version(CONTRACT.name, orders, version=None, actor="ian"),
                                 b.add_version(CONTRACT.name, other, version=None, actor="ivy"))
            created = [r for r in results if not isinstance(r, BaseException)]
            refused = [r for r in results if isinstance(r, BaseException)]
            assert len(created) == 1 and created[0][1] is True
            assert len(refused) == 1 and isinstance(refused[0], Conflict) and "immutable" in str(refused[0])
            stored = await b.version(CONTRACT.name, "1.0.0")
            assert stored.sha256 == created[0][0].sha256 and stored.created_by == created[0][0].created_by
            assert len(await a.store.list_changes(contract=CONTRACT.name)) == 1
            assert (await b.verify_audit()).ok

    run(scenario())


def test_concurrent_audit_appends_from_two_stores_keep_one_chain(postgres_store_url: str) -> None:
    from registry.model import Plan

    async def scenario() -> None:
        async with two_registries(postgres_store_url) as (a, b):
            await asyncio.gather(*((a if i % 2 else b).put_plan(Plan(name=f"plan-{i}"), actor=f"admin-{i % 2}")
                                   for i in range(50)))
            records = await a.audit()
            assert [r.seq for r in records] == list(range(1, 51))
            assert sorted(r.target for r in records) == sorted(f"plan/plan-{i}" for i in range(50))
            assert all(r.prev_hash == p.hash for p, r in zip(records, records[1:]))
            verified = await b.verify_audit()
            assert verified.ok and verified.records == 50, verified.problems
            assert await a.store.audit_head() == (50, records[-1].hash)

    run(scenario())


def test_two_instances_migrating_a_new_database_at_once(postgres_databases: Any) -> None:
    url = postgres_databases.create()

    async def scenario() -> None:
        stores = [PostgresStore(url) for _ in range(3)]
        await asyncio.gather(*(store.open() for store in stores))  # the advisory lock makes them take turns
        try:
            await stores[0].create_contract(CONTRACT, actor="ian")
            assert [c.name for c in await stores[2].list_contracts()] == [CONTRACT.name]
        finally:
            await asyncio.gather(*(store.close() for store in stores))
        async with await psycopg.AsyncConnection.connect(url) as db:
            migrations = await (await db.execute("SELECT version FROM schema_migrations ORDER BY version")).fetchall()
            heads = await (await db.execute("SELECT seq FROM audit_head")).fetchall()
        assert [m[0] for m in migrations] == [number for number, _ in MIGRATIONS] and heads == [(0,)]

    run(scenario())
