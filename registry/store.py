"""The registry store: one protocol, a table of backends keyed by URL scheme.

`sqlite:///path/to/file.db` is the embedded default; `postgresql://user@host:5432/db`
(or `postgres://…`) is the production store that several registry instances share.
Every method is one transaction: a failure leaves nothing behind.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

from registry.audit import AuditEntry
from registry.model import (
    Consumer,
    Contract,
    NewConsumer,
    NewContract,
    NewVerification,
    NewVersion,
    Plan,
    Usage,
    Verification,
    Version,
)


class Store(Protocol):
    """What the registry needs from a database."""

    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None:
        """Release connections."""

    async def create_contract(self, new: NewContract, *, actor: str) -> tuple[Contract, bool]:
        """Insert a contract; (existing, False) when one by that name exists."""

    async def get_contract(self, name: str) -> Contract | None:
        """One contract by name."""

    async def list_contracts(self) -> list[Contract]:
        """Every contract, by name."""

    async def add_version(self, new: NewVersion, *, actor: str) -> tuple[Version, bool]:
        """Insert a version; (existing, False) when that version number exists already."""

    async def get_changes(self, contract: str, version: str) -> str | None:
        """The compatibility report stored with a version, as JSON."""

    async def get_version(self, contract: str, version: str) -> Version | None:
        """One version's metadata."""

    async def get_document(self, contract: str, version: str) -> str | None:
        """One version's canonical document text."""

    async def list_versions(self, contract: str) -> list[Version]:
        """Every version of a contract, oldest first."""

    async def set_state(self, contract: str, version: str, state: str, *, expected: str,
                        sunset: date | None = None, successor: str | None = None) -> Version | None:
        """Move a version to `state` only if it is in `expected`; None when it was not."""

    async def list_published(self) -> list[tuple[Contract, Version, str]]:
        """Every published version with its contract and document."""

    async def put_plan(self, plan: Plan) -> None:
        """Create or replace a plan."""

    async def list_plans(self) -> list[Plan]:
        """Every plan, by name."""

    async def create_consumer(self, new: NewConsumer, secret_hash: str, *, actor: str) -> tuple[Consumer, bool]:
        """Insert a consumer; (existing, False) when the id is taken."""

    async def get_consumer(self, consumer_id: str) -> Consumer | None:
        """One consumer with its subscriptions."""

    async def list_consumers(self) -> list[Consumer]:
        """Every consumer, by id."""

    async def consumer_secret_hash(self, consumer_id: str) -> str | None:
        """The stored hash of a consumer's client secret."""

    async def add_api_key(self, consumer_id: str, key_hash: str) -> None:
        """Store the hash of a new API key."""

    async def api_keys(self) -> dict[str, str]:
        """API key hash → consumer id."""

    async def append_audit(self, entry: AuditEntry) -> None:
        """Chain an audit record for an action that changes no row here (an operator's replay, say)."""

    async def record_verification(self, contract: str, version: str, new: NewVerification, *, actor: str,
                                  audit: AuditEntry | None = None) -> Verification:
        """Store the outcome of a provider verification."""

    async def list_verifications(self, contract: str, version: str) -> list[Verification]:
        """A version's verifications, newest first."""

    async def record_usage(self, rows: list[Usage]) -> None:
        """Add calls to the usage records (counts add up, first/last seen widen)."""

    async def list_usage(self, contract: str) -> list[Usage]:
        """Who called which operation of a contract."""

    async def set_subscription(self, consumer_id: str, contract: str, major: int, *, subscribed: bool) -> bool:
        """Add or remove a subscription; whether anything changed."""


def open_store(url: str) -> Store:
    """The store for a URL, picked from BACKENDS by its scheme."""
    from registry.postgres_store import PostgresStore
    from registry.sqlite_store import SQLiteStore

    backends = {"sqlite": SQLiteStore, "postgresql": PostgresStore, "postgres": PostgresStore}
    scheme = url.split(":", 1)[0]
    if scheme not in backends:
        raise ValueError(f"unknown store {url!r}: supported schemes are {sorted(backends)}")
    return backends[scheme](url)
