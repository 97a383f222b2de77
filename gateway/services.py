"""What every route, the registry API and the background tasks share: built once from the configuration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.config import GatewayConfig
from gateway.pipeline import Pipeline
from gateway.upstream import Upstream
from policies.authentication import DirectoryHolder
from policies.backend_protection import UpstreamGuard
from policies.circuit_breaker import CircuitBreaker
from policies.correlation_id import CorrelationIdPolicy
from policies.identity import Caller, Directory
from policies.idempotency import BACKENDS as IDEMPOTENCY_BACKENDS
from policies.idempotency import IdempotencyStore
from policies.observability import Metrics, UsageRecorder
from policies.rate_limit import LIMITERS, Limiter
from policies.state.connections import redis_client
from registry import webhooks
from registry.model import Consumer, Plan
from registry.tokens import IssuerConfig, JwtVerifier, SigningKey


class Services:
    """The objects shared by every route's policies, and by the routes of the registry and events."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        tokens = config.tokens
        self.correlation = CorrelationIdPolicy(config.correlation_id)
        self.pipeline = Pipeline(self.correlation, max_body_bytes=config.max_body_bytes,
                                 body_timeout=config.body_timeout_seconds)
        self.signing_key = SigningKey.load_or_create(Path(tokens.signing_key_file))
        self.verifier = JwtVerifier(list(config.issuers),
                                    own=(self.signing_key, _own_issuer(config, tokens.gateway_audience)),
                                    max_token_bytes=config.authentication.max_token_bytes)
        self.registry_verifier = JwtVerifier(list(config.registry_issuers),
                                             own=(self.signing_key, _own_issuer(config, tokens.registry_audience)))
        self.directory = DirectoryHolder()
        self.metrics = Metrics(config.observability.latency_buckets)
        self.usage = UsageRecorder()
        state = config.state
        self.redis: Any = redis_client(state.redis_url) if state.backend == "redis" else None
        self.idempotency: IdempotencyStore = IDEMPOTENCY_BACKENDS[state.backend](self.redis, prefix=state.key_prefix)
        self.limiter: Limiter = LIMITERS[state.backend](self.redis, state.key_prefix + "rl:")
        self.upstreams = {name: Upstream(name, upstream, correlation_header=self.correlation.header)
                          for name, upstream in config.upstreams.items()}
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

    def webhook_secret(self) -> Callable[[str], str]:
        """The signing secret of a webhook, derived from the gateway's key (never stored)."""
        key_bytes = self.signing_key.private_key.private_bytes_raw()
        return lambda webhook_id: webhooks.secret_for(key_bytes, webhook_id)

    def refresh_gauges(self) -> None:
        """Copy the guards' in-flight counts into the metrics (on scrape)."""
        for name, guard in self.guards.items():
            self.metrics.set_in_flight(name, guard.in_flight)

    async def close(self) -> None:
        """Close the upstream pools and the Redis connections."""
        for upstream in self.upstreams.values():
            await upstream.close()
        aclose = getattr(self.limiter, "aclose", None)
        if aclose is not None:
            await aclose()


def _own_issuer(config: GatewayConfig, audience: str) -> IssuerConfig:
    return IssuerConfig(issuer=config.tokens.issuer, audience=audience, jwks_url="", algorithms=("EdDSA",),
                        leeway_seconds=30)
