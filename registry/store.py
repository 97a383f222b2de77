"""The registry store: one protocol, a table of backends keyed by URL scheme.

`sqlite:///path/to/file.db` is the embedded default; `postgresql://user@host:5432/db`
(or `postgres://…`) is the production store that several registry instances share.
Every method is one transaction: a failure leaves nothing behind.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from registry.audit import AuditEntry, AuditRecord
from registry.model import (
    ChangeRequest,
    Consumer,
    Contract,
    NewChange,
    NewConsumer,
    NewContract,
    NewVerification,
    NewVersion,
    Plan,
    Usage,
    Verification,
    Version,
    Vote,
)
from registry.webhooks import Delivery, Webhook

Audit = AuditEntry | None


class Store(Protocol):
    """What the registry needs from a database. Methods that change something take the audit entry
    to chain in the same transaction (recorded only when something changed)."""

    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None:
        """Release connections."""

    async def create_contract(self, new: NewContract, *, actor: str, audit: Audit = None) -> tuple[Contract, bool]:
        """Insert a contract; (existing, False) when one by that name exists."""

    async def get_contract(self, name: str) -> Contract | None:
        """One contract by name."""

    async def list_contracts(self) -> list[Contract]:
        """Every contract, by name."""

    async def add_version(self, new: NewVersion, *, actor: str, state: str = "draft", change: NewChange | None = None,
                          audit: Audit = None) -> tuple[Version, bool]:
        """Insert a version (with the change request proposing it); (existing, False) when the number is taken."""

    async def get_changes(self, contract: str, version: str) -> str | None:
        """The compatibility report stored with a version, as JSON."""

    async def get_version(self, contract: str, version: str) -> Version | None:
        """One version's metadata."""

    async def get_document(self, contract: str, version: str) -> str | None:
        """One version's canonical document text."""

    async def list_versions(self, contract: str) -> list[Version]:
        """Every version of a contract, oldest first."""

    async def set_state(self, contract: str, version: str, state: str, *, expected: str,
                        sunset: date | None = None, successor: str | None = None, audit: Audit = None
                        ) -> Version | None:
        """Move a version to `state` only if it is in `expected`; None when it was not."""

    async def list_published(self) -> list[tuple[Contract, Version, str]]:
        """Every published (or deprecated, retired) version with its contract and document."""

    async def get_change(self, change_id: str) -> ChangeRequest | None:
        """One change request with its votes."""

    async def change_for(self, contract: str, version: str) -> ChangeRequest | None:
        """The change request that proposed a version."""

    async def list_changes(self, *, contract: str | None = None, state: str | None = None) -> list[ChangeRequest]:
        """Change requests, newest first, filtered by contract or state."""

    async def vote(self, change_id: str, vote: Vote, *, expected_row_version: int | None = None,
                   audit: Audit = None) -> tuple[ChangeRequest | None, str]:
        """Count a vote; (request, "recorded"), or the reason it was not: missing, stale, closed, duplicate."""

    async def close_change(self, change_id: str, state: str, *, expected: str, version_state: str,
                           audit: Audit = None) -> ChangeRequest | None:
        """Move an `expected` change request to `state` and its version to `version_state`; None if it was not."""

    async def put_plan(self, plan: Plan, *, audit: Audit = None) -> None:
        """Create or replace a plan."""

    async def list_plans(self) -> list[Plan]:
        """Every plan, by name."""

    async def create_consumer(self, new: NewConsumer, secret_hash: str, *, actor: str,
                              audit: Audit = None) -> tuple[Consumer, bool]:
        """Insert a consumer; (existing, False) when the id is taken."""

    async def get_consumer(self, consumer_id: str) -> Consumer | None:
        """One consumer with its subscriptions."""

    async def list_consumers(self) -> list[Consumer]:
        """Every consumer, by id."""

    async def consumer_secret_hash(self, consumer_id: str) -> str | None:
        """The stored hash of a consumer's client secret."""

    async def add_api_key(self, consumer_id: str, key_hash: str, *, audit: Audit = None) -> None:
        """Store the hash of a new API key."""

    async def api_keys(self) -> dict[str, str]:
        """API key hash → consumer id."""

    async def set_subscription(self, consumer_id: str, contract: str, major: int, *, subscribed: bool,
                               audit: Audit = None) -> bool:
        """Add or remove a subscription; whether anything changed."""

    async def record_usage(self, usage: list[Usage]) -> None:
        """Add calls to the usage records (counts add up, first/last seen widen)."""

    async def list_usage(self, contract: str) -> list[Usage]:
        """Who called which operation of a contract."""

    async def record_verification(self, contract: str, version: str, new: NewVerification, *, actor: str,
                                  audit: Audit = None) -> Verification:
        """Store the outcome of a provider verification."""

    async def list_verifications(self, contract: str, version: str) -> list[Verification]:
        """A version's verifications, newest first."""

    async def append_audit(self, entry: AuditEntry) -> None:
        """Chain an audit record for an action that changes no row here (an operator's replay, say)."""

    async def audit_head(self) -> tuple[int, str] | None:
        """The last record's sequence number and hash."""

    async def list_audit(self, *, target: str | None = None, actor: str | None = None, action: str | None = None,
                         limit: int = 1000, after_seq: int = 0) -> list[AuditRecord]:
        """Audit records after a sequence number, oldest first, filtered by target, actor or action."""

    async def create_webhook(self, webhook: Webhook, *, audit: Audit = None) -> None:
        """Subscribe a URL to workflow events."""

    async def list_webhooks(self) -> list[Webhook]:
        """Every webhook, oldest first."""

    async def delete_webhook(self, webhook_id: str, *, audit: Audit = None) -> bool:
        """Drop a webhook and its deliveries; whether it existed."""

    async def due_deliveries(self, at: datetime, limit: int) -> list[tuple[Delivery, str, bytes]]:
        """Claim the deliveries due at `at` for a minute: each with its webhook's URL and its payload."""

    async def mark_delivery(self, delivery_id: int, state: str, attempts: int, next_attempt_at: datetime | None,
                            status: int | None, error: str) -> None:
        """Record the outcome of an attempt."""

    async def list_deliveries(self, webhook_id: str, limit: int = 200) -> list[Delivery]:
        """A webhook's deliveries, newest first."""


def open_store(url: str) -> Store:
    """The store for a URL, picked from BACKENDS by its scheme."""
    from registry.postgres_store import PostgresStore
    from registry.sqlite_store import SQLiteStore

    backends = {"sqlite": SQLiteStore, "postgresql": PostgresStore, "postgres": PostgresStore}
    scheme = url.split(":", 1)[0]
    if scheme not in backends:
        raise ValueError(f"unknown store {url!r}: supported schemes are {sorted(backends)}")
    return backends[scheme](url)
