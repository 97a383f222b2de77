"""Registry operations and their rules, over any Store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from registry import documents
from registry.errors import Conflict, InvalidRequest, NotFound
from registry.model import Contract, NewContract, SemVer, Version
from registry.store import Store

Listener = Callable[[], Awaitable[None]]

# what `publish` may move a version from (the review workflow joins in with its issue)
PUBLISHABLE_FROM = ("draft", "approved")


class Registry:
    """Contracts and versions with their rules: immutable versions, guarded publishing."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._listeners: list[Listener] = []

    def on_publish(self, listener: Listener) -> None:
        """Call `listener` after every change to what is published."""
        self._listeners.append(listener)

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
        stored, created = await self.store.add_version(name, version, semver.major, canonical, digest, actor=actor)
        if not created and stored.sha256 != digest:
            raise Conflict(f"{name}@{version} exists with other content; versions are immutable, propose a new one")
        return stored, created

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
        for listener in self._listeners:
            await listener()
        return updated


def _definition(contract: Contract | NewContract) -> tuple[Any, ...]:
    return contract.kind, contract.owner, contract.description, contract.upstream


def _version_of(contract: Contract, document: dict[str, Any], version: str | None) -> str:
    info = document.get("info")
    declared = info.get("version") if contract.kind == "openapi" and isinstance(info, dict) else None
    if version is None and declared is None:
        raise InvalidRequest("say which version this is: ?version=MAJOR.MINOR.PATCH")
    if version is not None and declared is not None and str(declared) != version:
        raise InvalidRequest(f"version {version!r} does not match the document's info.version {declared!r}")
    return version if version is not None else str(declared)
