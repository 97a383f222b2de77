"""Who is calling: the consumer that authentication resolved, as the other policies see it."""

from __future__ import annotations

import msgspec

from registry.model import Plan

ANONYMOUS_PLAN = Plan(name="anonymous")


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated consumer with its plan, scopes and subscriptions."""

    id: str
    plan: Plan = ANONYMOUS_PLAN
    scopes: frozenset[str] = frozenset()
    subscriptions: frozenset[tuple[str, int]] = frozenset()  # (contract, major)

    def subscribed(self, contract: str, major: int) -> bool:
        """Whether the consumer may call this contract major."""
        return (contract, major) in self.subscriptions


class Directory:
    """Every consumer the gateway knows, loaded with the routing table and swapped with it."""

    def __init__(self, callers: dict[str, Caller] | None = None, api_keys: dict[str, str] | None = None) -> None:
        self.callers = callers or {}
        self.api_keys = api_keys or {}  # sha256 of the key -> consumer id

    def caller(self, consumer_id: str, scopes: frozenset[str] | None = None) -> Caller | None:
        """The registered consumer, carrying the scopes its credential grants (None: its registered ones)."""
        known = self.callers.get(consumer_id)
        if known is None or scopes is None:
            return known
        return msgspec.structs.replace(known, scopes=scopes)
