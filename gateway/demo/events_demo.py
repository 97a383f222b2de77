"""The events part of the demo: a producer (`channel-wms`), a downstream consumer process, Redis state.

Events need Redis (the memory backend cannot store them durably), so the demo switches to the Redis
at `state.redis_url` when one answers, under a key prefix of its own: `state.key_prefix` when the config
sets one, else `govgate-demo:<folder hash>:` (cleared at each start, like the demo's registry). Without Redis the demo runs as before and says that events are off.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import msgspec

from gateway.config import GatewayConfig, StateConfig
from registry.model import NewConsumer, Plan, Subscription
from registry.service import Registry
from registry.tokens import SigningKey

ERP_MODULE = "gateway.demo.erp_stock"  # the sample ERP plus the stock-adjustment endpoint the consumer calls
PREFIX = "govgate-demo:"
PLAN = Plan(name="events", rate_per_second=200, burst=400, priority="batch")
EVENT_CONTRACTS = ("events.inventory-adjusted", "events.order-shipped", "events.return-received")
# consumer id -> (scopes, event contracts it is subscribed to, major 1)
IDENTITIES = {
    "channel-wms": (["events:publish"], EVENT_CONTRACTS),
    "erp-stock-sync": (["events:consume"], ("events.inventory-adjusted",)),
}


def demo_prefix(config: GatewayConfig) -> str:
    """The demo's Redis key prefix: the configured one, else one per demo folder (two demos never share keys)."""
    if config.state.key_prefix != StateConfig().key_prefix:
        return config.state.key_prefix
    return f"{PREFIX}{hashlib.sha256(str(Path.cwd().resolve()).encode()).hexdigest()[:8]}:"


def use_redis(config: GatewayConfig) -> GatewayConfig:
    """The config with Redis state when a Redis answers (and the config did not choose memory on purpose).

    Only the demo's own prefix is cleared: a test's or another folder's demo keeps its keys.
    """
    if config.state.backend == "redis":
        return config
    import redis

    prefix = demo_prefix(config)
    try:
        client = redis.Redis.from_url(config.state.redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)
        client.ping()
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        client.close()
    except (redis.RedisError, OSError):
        return config
    state = StateConfig(backend="redis", redis_url=config.state.redis_url, key_prefix=prefix)
    return msgspec.structs.replace(config, state=state)


async def seed(registry: Registry) -> None:
    """The producer and the consumer identities, subscribed to their event contracts."""
    await registry.put_plan(PLAN)
    for consumer_id, (scopes, contracts) in IDENTITIES.items():
        await registry.create_consumer(NewConsumer(id=consumer_id, name=consumer_id, plan=PLAN.name, scopes=scopes),
                                       actor="demo")
        for contract in contracts:
            await registry.subscribe(consumer_id, Subscription(contract=contract, major=1))


def tokens(config: GatewayConfig, key: SigningKey, ttl_seconds: int) -> dict[str, str]:
    """Gateway tokens of the event identities."""
    return {consumer_id: key.issue(issuer=config.tokens.issuer, audience=config.tokens.gateway_audience,
                                   subject=consumer_id, ttl_seconds=ttl_seconds, scope=" ".join(scopes),
                                   client_id=consumer_id)
            for consumer_id, (scopes, _) in IDENTITIES.items()}


def start_consumer(config: GatewayConfig, erp_url: str, token: str,
                   spawn: Callable[..., subprocess.Popen[bytes]]) -> subprocess.Popen[bytes] | None:
    """The inventory consumer as a process of its own; it exits with the demo. None without Redis."""
    if config.state.backend != "redis":
        return None
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::") else config.host
    return spawn(["-m", "gateway.demo.inventory_consumer", "--gateway", f"http://{host}:{config.port}",
                  "--erp", erp_url, "--parent", str(os.getpid())], env={**os.environ, "GOVGATE_TOKEN": token})


def banner(config: GatewayConfig, tokens_file: Path, erp_url: str) -> list[str]:
    """The demo's lines about events."""
    base = f"http://{config.host}:{config.port}"
    if config.state.backend != "redis":
        return ["Events: off (they need Redis: start redis-server, or set state.backend: redis).", ""]
    wms = f"WMS=$(python3 -c 'import json; print(json.load(open(\"{tokens_file}\"))[\"channel-wms\"])')"
    event = ('{"specversion":"1.0","id":"adj-0001","source":"urn:wms:be-01","type":"com.retail.wms.inventory.adjusted",'
             '"subject":"TSHIRT-BLK-M","data":{"sku":"TSHIRT-BLK-M","location":"BE-01-03","delta":-3,'
             '"reason":"cycle-count","onHandAfter":137,"adjustedAt":"2025-11-28T06:45:00Z"}}')
    return [
        f"Events (Redis state, prefix {config.state.key_prefix}): the WMS publishes, a consumer process applies it to the ERP's stock:",
        f"  {wms}",
        f"  curl -i -X POST {base}/events/events.inventory-adjusted/v1 -H \"Authorization: Bearer $WMS\" \\",
        f"       -H 'Content-Type: application/cloudevents+json' -d '{event}'",
        f"  then the ERP's stock: curl -s {erp_url}/positions/TSHIRT-BLK-M  (on hand 140 -> 137 at BE-01-03)",
        f"  the AsyncAPI document: curl -s {base}/events/events.inventory-adjusted/v1/asyncapi.json "
        "-H \"Authorization: Bearer $WMS\"",
        "",
    ]
