"""Authorization: the caller must be subscribed to the contract major and hold the scopes that
the operation's `security` requirement names (any one alternative suffices)."""

from __future__ import annotations

from typing import Any

import msgspec

from policies.context import Policy, RequestContext
from registry.problems import ProblemType

NOT_SUBSCRIBED = ProblemType(403, "not-subscribed", "Forbidden")
INSUFFICIENT_SCOPE = ProblemType(403, "insufficient-scope", "Forbidden")


class AuthorizationConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a caller needs besides being known."""

    subscriptions: bool = True
    """Require a subscription to the contract major."""
    scopes: bool = True
    """Require the scopes of the operation's security requirement."""


class AuthorizationPolicy(Policy):
    """403 unless the caller is subscribed and holds the operation's scopes."""

    def __init__(self, config: AuthorizationConfig, *, contract: str, major: int,
                 requirement: list[dict[str, list[str]]] | None) -> None:
        self.config = config
        self.contract = contract
        self.major = major
        # alternatives of scope sets; an empty requirement (or an empty alternative) needs no scope
        alternatives = [frozenset(s for scopes in alt.values() for s in scopes or []) for alt in requirement or []]
        self.alternatives: list[frozenset[str]] = alternatives or [frozenset()]

    def on_request(self, ctx: RequestContext) -> None:
        caller = ctx.consumer
        if caller is None:
            return  # anonymous calls were allowed by authentication's configuration
        if self.config.subscriptions and not caller.subscribed(self.contract, self.major):
            raise NOT_SUBSCRIBED(f"consumer {caller.id!r} is not subscribed to {self.contract} v{self.major}; "
                                 f"each major needs its own subscription: an admin runs "
                                 f"`govgate consumer subscribe {caller.id} {self.contract}@{self.major}`")
        if self.config.scopes and not any(needed <= caller.scopes for needed in self.alternatives):
            fewest = min(self.alternatives, key=len)
            wanted = " ".join(sorted(fewest))
            raise INSUFFICIENT_SCOPE(f"this operation needs the scopes: {wanted}",
                                     headers={"WWW-Authenticate": f'Bearer realm="govgate", '
                                                                  f'error="insufficient_scope", scope="{wanted}"'})


def requirement_of(document: dict[str, Any], operation: dict[str, Any]) -> list[dict[str, list[str]]]:
    """The operation's effective security requirement (its own, else the document's)."""
    requirement = operation.get("security", document.get("security"))
    return [alt for alt in requirement if isinstance(alt, dict)] if isinstance(requirement, list) else []
