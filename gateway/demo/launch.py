"""`govgate serve --demo`: a sample ERP upstream, the bundled contracts published, curl examples."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import msgspec

from gateway.catalog import bundled_catalog, publish_catalog
from gateway.config import GatewayConfig
from gateway.upstream import UpstreamConfig
from registry.service import Registry
from registry.store import open_store

DEMO_DIR = Path(".govgate")
DEMO_DB = DEMO_DIR / "demo.db"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sample_erp(port: int | None = None, *, timeout: float = 20.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start the sample ERP upstream as its own process; (process, base URL) once it answers."""
    port = port or free_port()
    process = subprocess.Popen([sys.executable, "-m", "gateway.demo.erp", "--port", str(port)])
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
    process, erp_url = start_sample_erp()
    upstreams = {"erp": UpstreamConfig(url=erp_url), **config.upstreams}
    store_url = f"sqlite:///{DEMO_DB}"
    config = msgspec.structs.replace(config, upstreams=upstreams, store=store_url)

    async def seed() -> list[str]:
        store = open_store(store_url)
        await store.open()
        try:
            return await publish_catalog(Registry(store), bundled_catalog())
        finally:
            await store.close()

    try:
        published = asyncio.run(seed())
    except BaseException:
        process.kill()
        raise
    print(banner(config, erp_url, published), flush=True)
    return config, process


def banner(config: GatewayConfig, erp_url: str, published: list[str]) -> str:
    """What a newcomer needs to try the demo at once."""
    base = f"http://{config.host}:{config.port}"
    order = ('{"channel":"web","externalReference":"WEB-1001",'
             '"customer":{"id":"C-42","email":"ada@example.com","name":"Ada Lovelace"},'
             '"lines":[{"sku":"SKU-1001","quantity":2,"unitPrice":{"amount":"19.99","currency":"EUR"}}],'
             '"shippingAddress":{"name":"Ada Lovelace","line1":"1 Analytical St","city":"London",'
             '"postalCode":"N1 9GU","country":"GB"},"payment":{"method":"invoice","termsDays":30}}')
    invalid = '{"channel":"fax","lines":[{"sku":"bad sku","quantity":0}]}'
    return "\n".join([
        "",
        f"govgate demo: gateway and registry on {base}",
        f"  sample ERP upstream: {erp_url}   registry store: {config.store}",
        f"  published: {', '.join(published)}",
        "",
        "A valid call (forwarded to the ERP, answered with its X-Correlation-ID):",
        f"  curl -i -X POST {base}/erp.sales-orders/v1/orders -H 'Content-Type: application/json' \\",
        f"       -H 'X-Correlation-ID: demo-0001' -d '{order}'",
        "An invalid call (400 problem+json listing every error; the ERP never sees it):",
        f"  curl -i -X POST {base}/erp.sales-orders/v1/orders -H 'Content-Type: application/json' -d '{invalid}'",
        "Stock positions through the gateway:",
        f"  curl -i '{base}/wms.inventory/v1/positions?limit=5'",
        "The registry:",
        f"  curl -s {base}/registry/contracts",
        f"  curl -s {base}/registry/published",
        f"  curl -s {base}/registry/openapi.json",
        "",
    ])
