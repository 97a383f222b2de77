"""The policy chain of each route, assembled once when contracts load (never per request).

Order, after the request's way in DESIGN.md: observability (first, so it finishes last and
sees every outcome) → authenticate → authorize → rate limit → deprecation → request validation →
idempotency → response validation (its on_response runs before idempotency stores the answer) →
circuit breaker → backend protection (last, so a slot is held only while the upstream works).
Objects shared between routes (the token verifier, the consumer directory) are built once
here and handed to every route's policies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.config import GatewayConfig
from policies.authentication import AuthenticationPolicy, DirectoryHolder
from policies.authorization import AuthorizationPolicy, requirement_of
from policies.backend_protection import BackendProtectionPolicy, UpstreamGuard
from policies.circuit_breaker import CircuitBreaker, CircuitBreakerPolicy
from policies.context import Policy
from policies.deprecation import DeprecationPolicy
from policies.identity import Caller, Directory
from policies.idempotency import BACKENDS as IDEMPOTENCY_BACKENDS
from policies.idempotency import IdempotencyPolicy
from policies.observability import Metrics, ObservabilityPolicy, UsageRecorder
from policies.rate_limit import MemoryLimiter, RateLimitPolicy, RedisLimiter
from policies.request_validation import OperationValidator, RequestValidationPolicy
from policies.response_validation import ResponseValidationPolicy, ResponseValidator
from registry.model import Consumer, Contract, Plan, Version
from registry.tokens import IssuerConfig, JwtVerifier, SigningKey


class ChainBuilder:
    """Builds each route's chain from the configuration and the shared services."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        tokens = config.tokens
        self.signing_key = SigningKey.load_or_create(Path(tokens.signing_key_file))
        self.verifier = JwtVerifier(list(config.issuers),
                                    own=(self.signing_key, _own_issuer(config, tokens.gateway_audience)),
                                    max_token_bytes=config.authentication.max_token_bytes)
        self.registry_verifier = JwtVerifier(list(config.registry_issuers),
                                             own=(self.signing_key, _own_issuer(config, tokens.registry_audience)))
        self.directory = DirectoryHolder()
        self.metrics = Metrics(config.observability.latency_buckets)
        self.usage = UsageRecorder()
        self.redis = _redis(config) if config.state.backend == "redis" else None
        prefix = config.state.key_prefix
        self.idempotency = IDEMPOTENCY_BACKENDS[config.state.backend](self.redis, prefix=prefix)
        self.limiter = RedisLimiter(self.redis, prefix + "rl:") if self.redis is not None else MemoryLimiter()
        # one guard and one breaker per upstream, shared by every route that calls it
        self.guards = {name: UpstreamGuard(up.protection, name) for name, up in config.upstreams.items()}
        self.breakers = {name: CircuitBreaker(up.circuit_breaker, name, on_state_change=self.metrics.set_breaker_state)
                         for name, up in config.upstreams.items()}

    def load_directory(self, consumers: list[Consumer], plans: list[Plan], api_keys: dict[str, str]) -> None:
        """Swap in the consumers, their plans and API keys the store holds now."""
        by_name = {plan.name: plan for plan in plans}
        callers = {}
        for consumer in consumers:
            plan = by_name.get(consumer.plan) or Plan(name=consumer.plan)
            callers[consumer.id] = Caller(
                id=consumer.id, plan=plan, scopes=frozenset(consumer.scopes),
                subscriptions=frozenset((s.contract, s.major) for s in consumer.subscriptions))
        self.directory.current = Directory(callers, api_keys)

    def __call__(self, contract: Contract, version: Version, document: dict[str, Any], path_item: dict[str, Any],
                 operation: dict[str, Any], operation_id: str) -> list[Policy]:
        config = self.config
        validation = config.request_validation
        validator = OperationValidator(document, path_item, operation, check_formats=validation.check_formats)
        return [
            ObservabilityPolicy(config.observability, self.metrics, self.usage, upstream=contract.upstream),
            AuthenticationPolicy(config.authentication, self.verifier, self.directory),
            AuthorizationPolicy(config.authorization, contract=contract.name, major=version.major,
                                requirement=requirement_of(document, operation)),
            *([RateLimitPolicy(config.rate_limit, self.limiter, contract=contract.name, major=version.major,
                               operation_id=operation_id)] if config.rate_limit.enabled else []),
            # only a deprecated or retired version has anything to announce: published ones skip the policy
            *([DeprecationPolicy(config.deprecation, contract=contract.name, major=version.major, state=version.state,
                                 deprecated_at=version.deprecated_at, sunset=version.sunset,
                                 successor=version.successor)] if version.state != "published" else []),
            RequestValidationPolicy(validation, validator),
            IdempotencyPolicy(config.idempotency, self.idempotency, contract=contract.name, major=version.major,
                              operation_id=operation_id),
            *([ResponseValidationPolicy(config.response_validation, ResponseValidator(
                document, operation, check_formats=config.response_validation.check_formats))]
              if config.response_validation.mode != "off" else []),
            *self._upstream_policies(contract.upstream),
        ]

    def _upstream_policies(self, upstream: str | None) -> list[Policy]:
        if upstream not in self.guards:
            return []  # the gateway answers 502 upstream-not-configured
        up = self.config.upstreams[upstream]
        policies: list[Policy] = []
        if up.circuit_breaker.enabled:
            policies.append(CircuitBreakerPolicy(up.circuit_breaker, self.breakers[upstream]))
        policies.append(BackendProtectionPolicy(up.protection, self.guards[upstream]))
        return policies

    def refresh_gauges(self) -> None:
        """Copy the guards' in-flight counts into the metrics (on scrape)."""
        for name, guard in self.guards.items():
            self.metrics.set_in_flight(name, guard.in_flight)

    async def close(self) -> None:
        """Close the shared Redis connection and the rate limiter's own."""
        if isinstance(self.limiter, RedisLimiter):
            await self.limiter.aclose()


def _redis(config: GatewayConfig) -> Any:
    """The Redis client every policy shares: short timeouts, one retry, so an outage answers fast."""
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # a pool that queues when every connection is busy instead of failing, and short timeouts
    pool = BlockingConnectionPool.from_url(config.state.redis_url, max_connections=64, timeout=0.5,
                                           socket_timeout=0.5, socket_connect_timeout=0.5,
                                           retry=Retry(NoBackoff(), 1), health_check_interval=30)
    return Redis.from_pool(pool)


def _own_issuer(config: GatewayConfig, audience: str) -> IssuerConfig:
    return IssuerConfig(issuer=config.tokens.issuer, audience=audience, jwks_url="", algorithms=("EdDSA",),
                        leeway_seconds=30)
