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
    via: str = "none"  # jwt | api-key | none

    def subscribed(self, contract: str, major: int) -> bool:
        """Whether the consumer may call this contract major."""
        return (contract, major) in self.subscriptions
