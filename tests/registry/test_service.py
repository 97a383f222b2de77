"""Registry rules that the API and end-to-end tests run on SQLite only, here on both backends."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from registry.errors import Conflict, InvalidRequest
from registry.model import Deprecation, NewContract, NewVerification, Retirement, Usage
from registry.service import Registry
from registry.store import open_store

CONTRACT = NewContract(name="erp.sales-orders", kind="openapi", owner="team-erp", upstream="erp")
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/registry.db"
    return str(request.getfixturevalue("postgres_store_url"))


@pytest.fixture()
def orders(catalog: list[dict]) -> dict[str, Any]:
    return copy.deepcopy(next(e for e in catalog if e["name"] == "erp.sales-orders")["loaded"])


def run(url: str, scenario: Callable[[Registry], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        store = open_store(url)
        await store.open()
        try:
            await scenario(Registry(store, review=False, **options))
        finally:
            await store.close()

    asyncio.run(main())


def test_usage_counts_add_up_and_the_seen_times_widen(store_url: str) -> None:
    def calls(count: int, errors: int, first: datetime, last: datetime) -> Usage:
        return Usage(consumer="channel-checkout", contract=CONTRACT.name, major=1, operation="createOrder",
                     count=count, errors=errors, first_seen=first, last_seen=last)

    async def scenario(registry: Registry) -> None:
        await registry.store.record_usage([calls(3, 1, T0, T0 + timedelta(minutes=5))])
        await registry.store.record_usage([calls(2, 0, T0 - timedelta(minutes=1), T0 + timedelta(minutes=2))])
        await registry.store.record_usage([])
        assert await registry.store.list_usage(CONTRACT.name) == [
            calls(5, 1, T0 - timedelta(minutes=1), T0 + timedelta(minutes=5))]

    run(store_url, scenario)


def test_retiring_before_the_sunset_takes_an_admin_and_a_reason(store_url: str, orders: dict[str, Any]) -> None:
    async def scenario(registry: Registry) -> None:
        await registry.create_contract(CONTRACT, actor="ian")
        version, _, _ = await registry.add_version(CONTRACT.name, orders, version=None, actor="ian")
        await registry.publish(CONTRACT.name, version.version, actor="ada")
        sunset = date.today() + timedelta(days=40)
        deprecated = await registry.deprecate(CONTRACT.name, version.version, Deprecation(sunset=sunset), actor="ada")
        assert (deprecated.state, deprecated.sunset) == ("deprecated", sunset)
        with pytest.raises(Conflict):
            await registry.retire(CONTRACT.name, version.version, Retirement(force=True, reason="x"), actor="ian",
                                  admin=False)
        with pytest.raises(InvalidRequest):
            await registry.retire(CONTRACT.name, version.version, Retirement(force=True), actor="ada", admin=True)
        retired = await registry.retire(CONTRACT.name, version.version, Retirement(force=True, reason="leaked"),
                                        actor="ada", admin=True)
        assert (retired.state, retired.sunset, retired.deprecated_at) == ("retired", sunset, deprecated.deprecated_at)

    run(store_url, scenario)


def test_publishing_waits_for_a_passing_verification_in_each_required_environment(
        store_url: str, orders: dict[str, Any]) -> None:
    async def scenario(registry: Registry) -> None:
        await registry.create_contract(CONTRACT, actor="ian")
        version, _, _ = await registry.add_version(CONTRACT.name, orders, version=None, actor="ian")
        await registry.record_verification(CONTRACT.name, version.version, NewVerification(
            environment="staging", passed=False, report={"failed": 1}), actor="ci")
        assert await registry.can_i_publish(CONTRACT.name, version.version) == ["staging"]
        with pytest.raises(Conflict):
            await registry.publish(CONTRACT.name, version.version, actor="ada")
        await registry.record_verification(CONTRACT.name, version.version, NewVerification(
            environment="staging", passed=True), actor="ci")
        assert await registry.can_i_publish(CONTRACT.name, version.version) == []
        assert (await registry.publish(CONTRACT.name, version.version, actor="ada")).state == "published"
        history = await registry.store.list_verifications(CONTRACT.name, version.version)
        assert [(v.passed, v.recorded_by) for v in history] == [(True, "ci"), (False, "ci")]

    run(store_url, scenario, publish_requires_verification=("staging",))
