"""The policy chain of each route, assembled once when contracts load (never per request).

Order, after the request's way in DESIGN.md: authenticate → authorize → request validation.
Objects shared between routes (the token verifier, the consumer directory) are built once
here and handed to every route's policies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.config import GatewayConfig
from policies.authentication import AuthenticationPolicy, DirectoryHolder
from policies.authorization import AuthorizationPolicy, requirement_of
from policies.context import Policy
from policies.identity import Caller, Directory
from policies.request_validation import OperationValidator, RequestValidationPolicy
from registry.model import Consumer, Contract, Plan, Version
from registry.tokens import IssuerConfig, JwtVerifier, SigningKey


class ChainBuilder:
    """Builds each route's chain from the configuration and the shared services."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        tokens = config.tokens
        self.signing_key = SigningKey.load_or_create(Path(tokens.signing_key_file))
        self.verifier = JwtVerifier(list(config.issuers), own=(self.signing_key, _own_issuer(config, tokens.gateway_audience)))
        self.registry_verifier = JwtVerifier(list(config.registry_issuers),
                                             own=(self.signing_key, _own_issuer(config, tokens.registry_audience)))
        self.directory = DirectoryHolder()

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
                 operation: dict[str, Any]) -> list[Policy]:
        config = self.config
        validation = config.request_validation
        validator = OperationValidator(document, path_item, operation, check_formats=validation.check_formats)
        return [
            AuthenticationPolicy(config.authentication, self.verifier, self.directory),
            AuthorizationPolicy(config.authorization, contract=contract.name, major=version.major,
                                requirement=requirement_of(document, operation)),
            RequestValidationPolicy(validation, validator),
        ]


def _own_issuer(config: GatewayConfig, audience: str) -> IssuerConfig:
    return IssuerConfig(issuer=config.tokens.issuer, audience=audience, jwks_url="", algorithms=("EdDSA",),
                        leeway_seconds=30)
