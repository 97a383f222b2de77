"""Gateway configuration: one YAML file (`--config`), checked once at load time."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from gateway.upstream import UpstreamConfig
from policies.authentication import AuthenticationConfig
from policies.authorization import AuthorizationConfig
from policies.correlation_id import CorrelationIdConfig
from policies.deprecation import DeprecationConfig
from gateway.events.stream import EventsConfig
from policies.idempotency import IdempotencyConfig
from policies.observability import ObservabilityConfig
from policies.rate_limit import RateLimitConfig
from policies.request_validation import RequestValidationConfig
from policies.response_validation import ResponseValidationConfig
from registry.tokens import IssuerConfig


class StateConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where gateway state shared between instances lives: rate limits, idempotency records, events."""

    backend: Literal["memory", "redis"] = "memory"
    """memory: one process only; redis: every instance sharing one Redis sees the same state."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "govgate:"
    """Prefix of every Redis key, so that several gateways can share one Redis."""


class TokensConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The tokens govgate issues itself (to channels, and to people for the registry)."""

    issuer: str = "govgate"
    signing_key_file: str = ".govgate/signing-key.pem"
    """Ed25519 private key (PEM); created at first start. Instances that share tokens share this file."""
    gateway_audience: str = "govgate-gateway"
    registry_audience: str = "govgate-registry"
    access_token_seconds: Annotated[int, msgspec.Meta(ge=60, le=86400)] = 3600


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything `govgate serve` needs; every field has a working default."""

    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8080
    server: Literal["uvicorn", "granian"] = "uvicorn"
    """ASGI server: uvicorn (with httptools and uvloop) measured faster here than granian (docs/benchmarks.md)."""
    store: str = "sqlite:///.govgate/registry.db"
    """Registry store URL."""
    max_body_bytes: Annotated[int, msgspec.Meta(gt=0)] = 1024 * 1024
    """Larger request bodies are refused with 413 before the upstream sees them."""
    body_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 15.0
    """A request body that has not fully arrived by then is answered with 408."""
    max_header_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 32 * 1024
    """Requests whose header names and values add up to more are refused with 431 (nginx allows 4 × 8 KB)."""
    upstreams: dict[str, UpstreamConfig] = {}
    """Upstreams by the name contracts use in their `upstream` field."""
    state: StateConfig = StateConfig()
    tokens: TokensConfig = TokensConfig()
    issuers: list[IssuerConfig] = []
    """External OIDC issuers whose tokens the gateway accepts from channels."""
    registry_issuers: list[IssuerConfig] = []
    """External OIDC issuers whose tokens the registry accepts from people (with a `roles` claim)."""
    observability: ObservabilityConfig = ObservabilityConfig()
    usage_flush_seconds: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    """How often usage records (who called what) are written to the registry store."""
    authentication: AuthenticationConfig = AuthenticationConfig()
    authorization: AuthorizationConfig = AuthorizationConfig()
    correlation_id: CorrelationIdConfig = CorrelationIdConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    request_validation: RequestValidationConfig = RequestValidationConfig()
    response_validation: ResponseValidationConfig = ResponseValidationConfig()
    deprecation: DeprecationConfig = DeprecationConfig()
    review_required: bool = True
    """Adding a version proposes it: it reaches the gateway only after the board approves and an admin publishes."""
    lint_ruleset: str | None = None
    """The organisation's lint ruleset (YAML, may `extends: default`); the bundled default when unset."""
    publish_requires_verification: list[str] = []
    """Environments a version needs a passing `govgate verify --record` against before it is published."""
    approval_policy: str | None = None
    """YAML approval policy; the bundled policies/approval-policy.yaml when unset."""
    min_sunset_days: Annotated[int, msgspec.Meta(ge=0, le=3650)] = 30
    """A deprecation's sunset must be at least this many days ahead."""
    idempotency: IdempotencyConfig = IdempotencyConfig()
    events: EventsConfig = EventsConfig()
    """CloudEvents ingestion and consumer groups at /events/ (needs state.backend: redis; docs/events.md)."""
    log_level: Literal["debug", "info", "warning", "error"] = "warning"


def load(path: Path | None) -> GatewayConfig:
    """Read a YAML config file; the defaults when there is none."""
    if path is None:
        return GatewayConfig()
    try:
        return msgspec.yaml.decode(path.read_bytes(), type=GatewayConfig)
    except OSError as exc:
        raise SystemExit(f"govgate: cannot read config {path}: {exc.strerror}") from None
    except msgspec.ValidationError as exc:
        raise SystemExit(f"govgate: config {path} is invalid: {_named(exc, path)}") from None
    except msgspec.DecodeError as exc:
        raise SystemExit(f"govgate: config {path} is not valid YAML: {exc}") from None


def _named(error: msgspec.ValidationError, path: Path) -> str:
    """msgspec's message with its `$.upstreams[...].url` path spelt `upstreams.erp.url`: the key named."""
    message = str(error)
    found = re.search(r"`\$((?:\.\w+|\[[^\]]*\])*)`", message)
    if not found:
        return message
    location = found.group(1)
    field, _, rest = location.lstrip(".").partition("[...]")
    hints = typing.get_type_hints(GatewayConfig)
    if rest is not None and field in hints and typing.get_origin(hints[field]) is dict:
        value_type = typing.get_args(hints[field])[1]
        raw = msgspec.yaml.decode(path.read_bytes()).get(field) or {}
        for key, value in raw.items():
            try:
                msgspec.convert(value, value_type)
            except msgspec.ValidationError:
                location = f".{field}.{key}{rest}"
                break
    return message.replace(found.group(0), f"`{location.lstrip('.') or 'the top level'}`")
