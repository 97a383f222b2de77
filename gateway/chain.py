"""The policy chain of each route, assembled once when contracts load (never per request).

`POLICIES` is the chain's order, after the request's way in DESIGN.md: observability (first, so
it finishes last and sees every outcome) → authenticate → authorize → rate limit → deprecation →
request validation → idempotency → response validation (its on_response runs before idempotency
stores the answer) → circuit breaker → backend protection (last, so a slot is held only while the
upstream works). Each entry builds its policy for one operation, or None where the policy cannot
apply (switched off, idempotency on a GET, no upstream to protect): such a route never calls it.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.routing import Operation
from gateway.services import Services
from policies.authentication import AuthenticationPolicy
from policies.authorization import AuthorizationPolicy, requirement_of
from policies.backend_protection import BackendProtectionPolicy
from policies.circuit_breaker import CircuitBreakerPolicy
from policies.context import Policy
from policies.deprecation import DeprecationPolicy
from policies.idempotency import IdempotencyPolicy
from policies.observability import ObservabilityPolicy
from policies.rate_limit import RateLimitPolicy
from policies.request_validation import OperationValidator, RequestValidationPolicy
from policies.response_validation import ResponseValidationPolicy, ResponseValidator

Builder = Callable[[Services, Operation], Policy | None]


def _observability(s: Services, op: Operation) -> Policy:
    return ObservabilityPolicy(s.config.observability, s.metrics, s.usage, upstream=op.contract.upstream)


def _authentication(s: Services, op: Operation) -> Policy:
    return AuthenticationPolicy(s.config.authentication, s.verifier, s.directory)


def _authorization(s: Services, op: Operation) -> Policy:
    return AuthorizationPolicy(s.config.authorization, contract=op.contract.name, major=op.version.major,
                               requirement=requirement_of(op.document, op.operation))


def _rate_limit(s: Services, op: Operation) -> Policy | None:
    config = s.config.rate_limit
    return RateLimitPolicy(config, s.limiter, contract=op.contract.name, major=op.version.major,
                           operation_id=op.operation_id) if config.enabled else None


def _deprecation(s: Services, op: Operation) -> Policy | None:
    version = op.version
    if version.state == "published" or not (s.config.deprecation.enabled or version.state == "retired"):
        return None  # nothing to announce, nothing to refuse
    return DeprecationPolicy(s.config.deprecation, contract=op.contract.name, major=version.major,
                             state=version.state, deprecated_at=version.deprecated_at, sunset=version.sunset,
                             successor=version.successor)


def _request_validation(s: Services, op: Operation) -> Policy | None:
    config = s.config.request_validation
    if config.mode == "off":
        return None
    validator = OperationValidator(op.document, op.path_item, op.operation, check_formats=config.check_formats)
    return RequestValidationPolicy(config, validator)


def _idempotency(s: Services, op: Operation) -> Policy | None:
    config = s.config.idempotency
    return IdempotencyPolicy(config, s.idempotency, contract=op.contract.name, major=op.version.major,
                             operation_id=op.operation_id) if config.applies_to(op.method) else None


def _response_validation(s: Services, op: Operation) -> Policy | None:
    config = s.config.response_validation
    if config.mode == "off":
        return None
    return ResponseValidationPolicy(config, ResponseValidator(op.document, op.operation,
                                                              check_formats=config.check_formats))


def _circuit_breaker(s: Services, op: Operation) -> Policy | None:
    upstream = s.config.upstreams.get(op.contract.upstream or "")
    if upstream is None or not upstream.circuit_breaker.enabled:
        return None  # no upstream: the gateway answers 502 upstream-not-configured
    return CircuitBreakerPolicy(upstream.circuit_breaker, s.breakers[op.contract.upstream or ""])


def _backend_protection(s: Services, op: Operation) -> Policy | None:
    upstream = s.config.upstreams.get(op.contract.upstream or "")
    if upstream is None:
        return None
    return BackendProtectionPolicy(upstream.protection, s.guards[op.contract.upstream or ""])


POLICIES: tuple[tuple[str, Builder], ...] = (
    ("observability", _observability),
    ("authentication", _authentication),
    ("authorization", _authorization),
    ("rate_limit", _rate_limit),
    ("deprecation", _deprecation),
    ("request_validation", _request_validation),
    ("idempotency", _idempotency),
    ("response_validation", _response_validation),
    ("circuit_breaker", _circuit_breaker),
    ("backend_protection", _backend_protection),
)


class ChainBuilder:
    """Builds each operation's chain from `POLICIES` and the shared services."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def __call__(self, op: Operation, only: frozenset[str] | None = None) -> list[Policy]:
        """The chain of `op`; with `only`, of those policies alone (an event stream's actions)."""
        return [policy for name, build in POLICIES
                if (only is None or name in only) and (policy := build(self.services, op)) is not None]
