"""`govgate serve --demo`: a sample ERP upstream, the bundled contracts published, curl examples."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

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
RETURNS_MODULE = "gateway.demo.returns"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the demo dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the demo's own shutdown still stops its children


def spawn_child(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """A Python module as a child process of the demo that does not outlive it."""
    return subprocess.Popen([sys.executable, *args], preexec_fn=_die_with_parent, **kwargs)  # noqa: PLW1509


def start_sample_erp(port: int | None = None, *, timeout: float = 20.0,
                     module: str = "gateway.demo.erp") -> tuple[subprocess.Popen[bytes], str]:
    """Start a sample upstream as its own process; (process, base URL) once it answers."""
    port = port or free_port()
    process = spawn_child(["-m", module, "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"govgate: the sample upstream {module} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"govgate: the sample upstream {module} did not start")


def port_is_free(host: str, port: int) -> bool:
    """Whether `govgate serve` could listen on host:port now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class Demo:
    """The demo's upstream processes, its registry and tokens; stopped with everything it started."""

    def __init__(self, config: GatewayConfig, lock: Any) -> None:
        self.config = config
        self.lock = lock
        self.processes: list[subprocess.Popen[bytes]] = []
        self.erp_url = self.returns_url = ""
        self.published: list[str] = []

    @classmethod
    def start(cls, config: GatewayConfig) -> Demo:
        """Check the port and the folder first: a running demo is never reset; then start and seed."""
        if not port_is_free(config.host, config.port):
            raise SystemExit(f"govgate: port {config.port} on {config.host} is in use (another govgate demo?): "
                             "stop it, or pass --port")
        demo = cls(config, _lock(DEMO_DIR / "demo.lock"))
        try:
            demo._prepare()
        except BaseException:
            demo.stop()
            raise
        return demo

    def _prepare(self) -> None:
        # the demo starts from a clean registry each time, so it always serves the bundled contracts
        for leftover in (DEMO_DB, DEMO_DB.with_name("demo.db-wal"), DEMO_DB.with_name("demo.db-shm")):
            leftover.unlink(missing_ok=True)
        erp, self.erp_url = start_sample_erp(module=events_demo.ERP_MODULE)  # + the stock adjustments events apply
        self.processes.append(erp)
        returns, self.returns_url = start_sample_erp(module=RETURNS_MODULE)
        self.processes.append(returns)
        upstreams = {"erp": UpstreamConfig(url=self.erp_url), "returns": UpstreamConfig(url=self.returns_url),
                     **self.config.upstreams}
        store_url = f"sqlite:///{DEMO_DB}"
        config = msgspec.structs.replace(self.config, upstreams=upstreams, store=store_url)
        self.config = config = events_demo.use_redis(config)  # events need Redis: used when one answers
        self.published = asyncio.run(_seed(store_url))
        write_tokens(config, DEMO_DIR / "demo-tokens.json")
        event_tokens = json.loads((DEMO_DIR / "demo-tokens.json").read_text())
        consumer = events_demo.start_consumer(config, self.erp_url, event_tokens["erp-stock-sync"], spawn_child)
        if consumer is not None:
            self.processes.append(consumer)

    def announce(self) -> None:
        """Print the banner: called once the port listens."""
        lines = banner(self.config, self.erp_url, self.returns_url, self.published)
        print(lines + "\n".join(events_demo.banner(self.config, DEMO_DIR / "demo-tokens.json", self.erp_url)),
              flush=True)

    def stop(self) -> None:
        """Stop every child (SIGTERM, then SIGKILL after 10 s) and release the folder."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.processes.clear()
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def _lock(path: Path) -> Any:
    """Hold an exclusive lock on the demo folder while the demo runs; one clear line if another holds it."""
    import fcntl

    path.parent.mkdir(exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise SystemExit(f"govgate: a demo already runs from {path.parent.resolve()} (pid {holder}); "
                         "stop it first (its registry and tokens are left as they are)") from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


async def _seed(store_url: str) -> list[str]:
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


def banner(config: GatewayConfig, erp_url: str, returns_url: str, published: list[str]) -> str:
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
        f"  sample upstreams: ERP {erp_url}, returns {returns_url}   registry store: {config.store}",
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
