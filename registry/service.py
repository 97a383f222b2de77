"""Registry operations and their rules, over any Store."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from registry import documents, tokens
from registry.compat.engine import diff_openapi
from registry.compat.events import diff_event_schemas
from registry.compat.model import Report
from registry.errors import Conflict, InvalidRequest, NotFound
from registry.model import (
    Consumer,
    Contract,
    Deprecation,
    NewConsumer,
    NewContract,
    NewVersion,
    Plan,
    Retirement,
    SemVer,
    Subscription,
    Version,
)
from registry.store import Store

Listener = Callable[[], Awaitable[None]]

# what `publish` may move a version from (the review workflow joins in with its issue)
PUBLISHABLE_FROM = ("draft", "approved")


class Registry:
    """Contracts and versions with their rules: immutable versions, guarded publishing."""

    def __init__(self, store: Store, *, min_sunset_days: int = 30) -> None:
        self.store = store
        self.min_sunset_days = min_sunset_days
        self._listeners: list[Listener] = []

    def on_change(self, listener: Listener) -> None:
        """Call `listener` after every change the gateway serves from: publications, consumers, plans."""
        self._listeners.append(listener)

    async def _changed(self) -> None:
        for listener in self._listeners:
            await listener()

    async def create_contract(self, new: NewContract, *, actor: str) -> tuple[Contract, bool]:
        """Register a contract; the same definition again is a no-op, another is 409."""
        if new.kind == "openapi" and new.upstream is None:
            raise InvalidRequest("an openapi contract needs an upstream")
        contract, created = await self.store.create_contract(new, actor=actor)
        if not created and _definition(contract) != _definition(new):
            raise Conflict(f"contract {new.name!r} exists with another definition")
        return contract, created

    async def contract(self, name: str) -> Contract:
        """One contract or NotFound."""
        contract = await self.store.get_contract(name)
        if contract is None:
            raise NotFound(f"no contract named {name!r}")
        return contract

    async def add_version(
        self, name: str, document: dict[str, Any], *, version: str | None, actor: str
    ) -> tuple[Version, bool]:
        """Check and store a document as a version; same content again is a no-op, other content 409."""
        contract = await self.contract(name)
        version = _version_of(contract, document, version)
        semver = SemVer.parse(version)
        if contract.kind == "openapi":
            documents.check_openapi(document)
        else:
            documents.check_event_schema(document)
        canonical = documents.canonical_json(document)
        digest = documents.sha256(canonical)
        existing = await self.store.get_version(name, version)
        if existing is not None:  # the same content again is a no-op: no need to diff
            return self._same_or_conflict(existing, digest, name, version), False
        base, report = await self._compare(contract, semver, document)
        new = NewVersion(contract=name, version=version, major=semver.major, document=canonical, sha256=digest,
                         base_version=base, required_bump=report.semver["required_bump"] if report else None,
                         changes=msgspec.json.encode(report).decode() if report else None)
        stored, created = await self.store.add_version(new, actor=actor)
        return self._same_or_conflict(stored, digest, name, version), created

    async def changes(self, name: str, version: str) -> bytes:
        """The compatibility report stored with a version (JSON), `null` for a first version."""
        await self.version(name, version)
        return (await self.store.get_changes(name, version) or "null").encode()

    async def _compare(self, contract: Contract, semver: SemVer, document: dict[str, Any]
                       ) -> tuple[str | None, Report | None]:
        """Diff against the version this one replaces: the newest published below it, else the newest below it."""
        earlier = [(SemVer.parse(v.version), v) for v in await self.store.list_versions(contract.name)
                   if v.state not in ("rejected", "withdrawn") and SemVer.parse(v.version) < semver]
        if not earlier:
            return None, None
        earlier.sort(key=lambda pair: pair[0])
        published = [v for _, v in earlier if v.state in ("published", "deprecated")]
        base = published[-1] if published else earlier[-1][1]
        base_document = json.loads(await self.store.get_document(contract.name, base.version) or "{}")
        if contract.kind == "openapi":
            return base.version, diff_openapi(base_document, document)
        history = [json.loads(await self.store.get_document(contract.name, v.version) or "{}") for _, v in earlier]
        return base.version, diff_event_schemas(history if contract.compatibility.endswith("_TRANSITIVE")
                                                else [base_document], document, mode=contract.compatibility,
                                                old_version=base.version, new_version=str(semver))

    @staticmethod
    def _same_or_conflict(stored: Version, digest: str, name: str, version: str) -> Version:
        if stored.sha256 != digest:
            raise Conflict(f"{name}@{version} exists with other content; versions are immutable, propose a new one")
        return stored

    async def version(self, name: str, version: str) -> Version:
        """One version or NotFound."""
        found = await self.store.get_version(name, version)
        if found is None:
            await self.contract(name)
            raise NotFound(f"contract {name!r} has no version {version!r}")
        return found

    async def document(self, name: str, version: str) -> str:
        """A version's canonical document text."""
        text = await self.store.get_document(name, version)
        if text is None:
            await self.version(name, version)
        return text or ""

    async def versions(self, name: str) -> list[Version]:
        """Every version of a contract, oldest first."""
        await self.contract(name)
        return await self.store.list_versions(name)

    async def publish(self, name: str, version: str, *, actor: str) -> Version:
        """Publish a version (idempotent) and tell the listeners."""
        current = await self.version(name, version)
        if current.state == "published":
            return current
        if current.state not in PUBLISHABLE_FROM:
            raise Conflict(f"{name}@{version} is {current.state}; publish needs one of {list(PUBLISHABLE_FROM)}")
        updated = await self.store.set_state(name, version, "published", expected=current.state)
        if updated is None:
            raise Conflict(f"{name}@{version} changed state meanwhile; read it again")
        await self._changed()
        return updated

    async def deprecate(self, name: str, version: str, deprecation: Deprecation, *, actor: str) -> Version:
        """Deprecate a published version with a sunset date (at least min_sunset_days ahead) and a successor."""
        current = await self.version(name, version)
        if current.state != "published":
            raise Conflict(f"{name}@{version} is {current.state}; only a published version can be deprecated")
        earliest = datetime.now(UTC).date() + timedelta(days=self.min_sunset_days)
        if deprecation.sunset < earliest:
            raise InvalidRequest(f"the sunset must be on or after {earliest} ({self.min_sunset_days} days ahead)")
        if deprecation.successor is not None:
            successor = await self.version(name, deprecation.successor)
            if successor.state != "published" or SemVer.parse(successor.version) <= SemVer.parse(version):
                raise InvalidRequest(f"the successor must be a newer published version of {name}")
        updated = await self.store.set_state(name, version, "deprecated", expected="published",
                                             sunset=deprecation.sunset, successor=deprecation.successor)
        if updated is None:
            raise Conflict(f"{name}@{version} changed state meanwhile; read it again")
        await self._changed()
        return updated

    async def retire(self, name: str, version: str, retirement: Retirement, *, actor: str, admin: bool) -> Version:
        """Retire a deprecated version: after its sunset, or before it when an admin forces it with a reason."""
        current = await self.version(name, version)
        if current.state != "deprecated":
            raise Conflict(f"{name}@{version} is {current.state}; only a deprecated version can be retired")
        if current.sunset and datetime.now(UTC).date() < current.sunset:
            if not (retirement.force and admin):
                raise Conflict(f"{name}@{version} sunsets on {current.sunset}; an admin may force it with a reason")
            if not retirement.reason.strip():
                raise InvalidRequest("forcing a retirement before the sunset needs a reason")
        updated = await self.store.set_state(name, version, "retired", expected="deprecated")
        if updated is None:
            raise Conflict(f"{name}@{version} changed state meanwhile; read it again")
        await self._changed()
        return updated

    async def put_plan(self, plan: Plan) -> Plan:
        """Create or replace a plan."""
        await self.store.put_plan(plan)
        await self._changed()
        return plan

    async def create_consumer(self, new: NewConsumer, *, actor: str) -> tuple[Consumer, str]:
        """Register a consumer; its client secret is returned once and stored hashed."""
        if new.plan not in {p.name for p in await self.store.list_plans()}:
            raise InvalidRequest(f"no plan named {new.plan!r}: create it first")
        secret = tokens.new_secret("gg_secret_")
        consumer, created = await self.store.create_consumer(new, tokens.hash_secret(secret), actor=actor)
        if not created:
            raise Conflict(f"consumer {new.id!r} exists")
        await self._changed()
        return consumer, secret

    async def consumer(self, consumer_id: str) -> Consumer:
        """One consumer or NotFound."""
        consumer = await self.store.get_consumer(consumer_id)
        if consumer is None:
            raise NotFound(f"no consumer {consumer_id!r}")
        return consumer

    async def issue_api_key(self, consumer_id: str) -> str:
        """A new API key for a consumer, returned once and stored hashed."""
        await self.consumer(consumer_id)
        key = tokens.new_secret("gg_key_")
        await self.store.add_api_key(consumer_id, tokens.hash_api_key(key))
        await self._changed()
        return key

    async def subscribe(self, consumer_id: str, subscription: Subscription, *, subscribed: bool = True) -> Consumer:
        """Let a consumer call a contract major (or stop it)."""
        await self.consumer(consumer_id)
        await self.contract(subscription.contract)
        await self.store.set_subscription(consumer_id, subscription.contract, subscription.major, subscribed=subscribed)
        await self._changed()
        return await self.consumer(consumer_id)



def _definition(contract: Contract | NewContract) -> tuple[Any, ...]:
    return contract.kind, contract.owner, contract.description, contract.upstream, contract.compatibility


def _version_of(contract: Contract, document: dict[str, Any], version: str | None) -> str:
    info = document.get("info")
    declared = info.get("version") if contract.kind == "openapi" and isinstance(info, dict) else None
    if version is None and declared is None:
        raise InvalidRequest("say which version this is: ?version=MAJOR.MINOR.PATCH")
    if version is not None and declared is not None and str(declared) != version:
        raise InvalidRequest(f"version {version!r} does not match the document's info.version {declared!r}")
    return version if version is not None else str(declared)
