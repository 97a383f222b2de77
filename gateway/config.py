"""Gateway configuration: one YAML file (`--config`), checked once at load time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec

from gateway.upstream import UpstreamConfig
from policies.correlation_id import CorrelationIdConfig
from policies.request_validation import RequestValidationConfig


class StateConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where gateway state shared between instances lives: rate limits, idempotency records, events."""

    backend: Literal["memory", "redis"] = "memory"
    """memory: one process only; redis: every instance sharing one Redis sees the same state."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "govgate:"
    """Prefix of every Redis key, so that several gateways can share one Redis."""


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything `govgate serve` needs; every field has a working default."""

    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8080
    server: Literal["granian", "uvicorn"] = "granian"
    """ASGI server; granian measured faster here (docs/benchmarks.md)."""
    store: str = "sqlite:///.govgate/registry.db"
    """Registry store URL."""
    max_body_bytes: Annotated[int, msgspec.Meta(gt=0)] = 1024 * 1024
    """Larger request bodies are refused with 413 before the upstream sees them."""
    upstreams: dict[str, UpstreamConfig] = {}
    """Upstreams by the name contracts use in their `upstream` field."""
    state: StateConfig = StateConfig()
    correlation_id: CorrelationIdConfig = CorrelationIdConfig()
    request_validation: RequestValidationConfig = RequestValidationConfig()
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
        raise SystemExit(f"govgate: config {path} is invalid: {exc}") from None
    except msgspec.DecodeError as exc:
        raise SystemExit(f"govgate: config {path} is not valid YAML: {exc}") from None
