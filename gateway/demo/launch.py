"""`govgate serve --demo`: a sample ERP upstream, the bundled contracts published, curl examples."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import msgspec

from gateway.catalog import bundled_catalog, publish_catalog, read_catalog
from gateway.config import GatewayConfig
from gateway.demo import events_demo
from gateway.upstream import UpstreamConfig
from registry.model import NewConsumer, Plan, Subscription
from registry.service import Registry
from registry.tokens import SigningKey
from registry.store import open_store

DEMO_DIR = Path(".govgate")
DEMO_DB = DEMO_DIR / "demo.db"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sample_erp(port: int | None = None, *, timeout: float = 20.0,
                     module: str = "gateway.demo.erp") -> tuple[subprocess.Popen[bytes], str]:
    """Start the sample ERP upstream as its own process; (process, base URL) once it answers."""
    port = port or free_port()
    process = subprocess.Popen([sys.executable, "-m", module, "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"govgate: the sample ERP upstream exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("govgate: the sample ERP upstream did not start")


def prepare(config: GatewayConfig) -> tuple[GatewayConfig, subprocess.Popen[bytes]]:
    """Start the upstream, publish the bundled contracts; the config to serve them with."""
    DEMO_DIR.mkdir(exist_ok=True)
    # the demo starts from a clean registry each time, so it always serves the bundled contracts
    for leftover in (DEMO_DB, DEMO_DB.with_name("demo.db-wal"), DEMO_DB.with_name("demo.db-shm")):
        leftover.unlink(missing_ok=True)
    process, erp_url = start_sample_erp(module=events_demo.ERP_MODULE)  # + the stock adjustments events apply
    upstreams = {"erp": UpstreamConfig(url=erp_url), **config.upstreams}
    store_url = f"sqlite:///{DEMO_DB}"
    config = msgspec.structs.replace(config, upstreams=upstreams, store=store_url)
    config = events_demo.use_redis(config)  # events need Redis: used when one answers

    async def seed() -> list[str]:
        store = open_store(store_url)
        await store.open()
        try:
            registry = Registry(store)
            published = await publish_catalog(registry, bundled_catalog())
            await seed_consumers(registry)
            await events_demo.seed(registry)  # the producer channel-wms and the consumer erp-stock-sync
            return published
        finally:
            await store.close()

    try:
        published = asyncio.run(seed())
    except BaseException:
        process.kill()
        raise
    write_tokens(config, DEMO_DIR / "demo-tokens.json")
    event_tokens = json.loads((DEMO_DIR / "demo-tokens.json").read_text())
    events_demo.start_consumer(config, erp_url, event_tokens["erp-stock-sync"])  # exits with this process
    print(banner(config, erp_url, published) + "\n".join(events_demo.banner(config, DEMO_DIR / "demo-tokens.json",
                                                                         erp_url)), flush=True)
    return config, process


DEMO_PLANS = [
    Plan(name="checkout", rate_per_second=100, burst=200, priority="checkout"),
    Plan(name="batch", rate_per_second=20, burst=40, quota_per_day=100_000, priority="batch"),
]
DEMO_CONSUMERS = {"channel-checkout": "checkout", "channel-batch": "batch"}
# people for the registry workflow: (subject, roles, team)
DEMO_PEOPLE = {
    "integrator": (["integrator"], "team-erp"),
    "board-1": (["board"], "governance"),
    "board-2": (["board"], "governance"),
    "admin": (["admin"], "platform"),
}


def catalog_scopes(entries: list[dict]) -> list[str]:
    """Every OAuth2 scope the catalog's APIs declare."""
    return sorted({scope for entry in entries if entry["kind"] == "openapi"
                   for scheme in (entry["loaded"].get("components", {}).get("securitySchemes") or {}).values()
                   for flow in (scheme.get("flows") or {}).values() for scope in flow.get("scopes", {})})


async def seed_consumers(registry: Registry) -> None:
    """The demo's plans and channels, subscribed to every bundled API with every scope."""
    entries = read_catalog(bundled_catalog())
    scopes = catalog_scopes(entries)
    for plan in DEMO_PLANS:
        await registry.put_plan(plan)
    for consumer_id, plan_id in DEMO_CONSUMERS.items():
        await registry.create_consumer(NewConsumer(id=consumer_id, name=consumer_id, plan=plan_id, scopes=scopes),
                                       actor="demo")
        for entry in entries:
            if entry["kind"] == "openapi":
                await registry.subscribe(consumer_id, Subscription(contract=entry["name"], major=1))


def write_tokens(config: GatewayConfig, path: Path) -> None:
    """Ready tokens for every demo identity, valid for a week."""
    key = SigningKey.load_or_create(Path(config.tokens.signing_key_file))
    week = 7 * 24 * 3600
    tokens = {subject: key.issue(issuer=config.tokens.issuer, audience=config.tokens.registry_audience,
                                 subject=subject, ttl_seconds=week, roles=roles, team=team)
              for subject, (roles, team) in DEMO_PEOPLE.items()}
    scopes = " ".join(catalog_scopes(read_catalog(bundled_catalog())))
    for consumer_id in DEMO_CONSUMERS:
        tokens[consumer_id] = key.issue(issuer=config.tokens.issuer, audience=config.tokens.gateway_audience,
                                        subject=consumer_id, ttl_seconds=week, scope=scopes, client_id=consumer_id)
    tokens.update(events_demo.tokens(config, key, week))  # channel-wms (events:publish), erp-stock-sync
    path.write_text(json.dumps(tokens, indent=2) + "\n")
    path.chmod(0o600)


def banner(config: GatewayConfig, erp_url: str, published: list[str]) -> str:
    """What a newcomer needs to try the demo at once."""
    base = f"http://{config.host}:{config.port}"
    order = ('{"channel":"web","externalReference":"WEB-1001",'
             '"customer":{"id":"C-42","email":"ada@example.com","name":"Ada Lovelace"},'
             '"lines":[{"sku":"SKU-1001","quantity":2,"unitPrice":{"amount":"19.99","currency":"EUR"}}],'
             '"shippingAddress":{"name":"Ada Lovelace","line1":"1 Analytical St","city":"London",'
             '"postalCode":"N1 9GU","country":"GB"},"payment":{"method":"invoice","termsDays":30}}')
    invalid = '{"channel":"fax","lines":[{"sku":"bad sku","quantity":0}]}'
    token = "TOKEN=$(python3 -c 'import json; print(json.load(open(\".govgate/demo-tokens.json\"))[\"channel-checkout\"])')"
    admin = "ADMIN=$(python3 -c 'import json; print(json.load(open(\".govgate/demo-tokens.json\"))[\"admin\"])')"
    return "\n".join([
        "",
        f"govgate demo: gateway and registry on {base}",
        f"  sample ERP upstream: {erp_url}   registry store: {config.store}",
        f"  published: {', '.join(published)}",
        "  tokens for every demo identity: .govgate/demo-tokens.json",
        "",
        "Take the checkout channel's token:",
        f"  {token}",
        "A valid call (forwarded to the ERP, answered with its X-Correlation-ID):",
        f"  curl -i -X POST {base}/erp.sales-orders/v1/orders -H \"Authorization: Bearer $TOKEN\" \\",
        f"       -H 'Content-Type: application/json' -H 'X-Correlation-ID: demo-0001' -d '{order}'",
        "An invalid call (400 problem+json listing every error; the ERP never sees it):",
        f"  curl -i -X POST {base}/erp.sales-orders/v1/orders -H \"Authorization: Bearer $TOKEN\" \\",
        f"       -H 'Content-Type: application/json' -d '{invalid}'",
        "Without a token (401):",
        f"  curl -i '{base}/wms.inventory/v1/positions?limit=5'",
        "The registry (as admin):",
        f"  {admin}",
        f"  curl -s {base}/registry/published -H \"Authorization: Bearer $ADMIN\"",
        f"  curl -s {base}/registry/consumers -H \"Authorization: Bearer $ADMIN\"",
        f"  curl -s {base}/registry/openapi.json",
        "",
    ])
