"""`make bench`: upstream direct, nginx and the gateway, side by side in one run, into docs/benchmarks.md.

Every target is a real process with one worker: the sample ERP upstream; nginx as a
reverse proxy (when installed: apt-get install nginx-light); the gateway passing through
(no authentication, no validation, no rate limit); and the gateway's full chain (JWT,
Redis rate limit, request validation, correlation id, metrics, usage, breaker, backend
protection) under uvicorn (the default) and under granian, which is how the default server was chosen.
Load comes from wrk when installed, otherwise from a small asyncio load generator. Rounds
are interleaved and medians reported, because the machine is shared and noisy. With
py-spy installed, the full chain is profiled under load and its top frames recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.bench.load import Result, python_load
from tests.conftest import ROOT, free_port, spawn, stop, wait_http

ORDER = {
    "channel": "web", "externalReference": "WEB-1001",
    "customer": {"id": "C-42", "email": "ada@example.com", "name": "Ada Lovelace"},
    "lines": [{"sku": f"SKU-{1000 + i}", "quantity": 1 + i,
               "unitPrice": {"amount": "19.99", "currency": "EUR"}} for i in range(8)],
    "shippingAddress": {"name": "Ada Lovelace", "line1": "1 Analytical St", "city": "London",
                        "postalCode": "N1 9GU", "country": "GB"},
    "billingAddress": {"name": "Ada Lovelace", "line1": "1 Analytical St", "city": "London",
                       "postalCode": "N1 9GU", "country": "GB"},
    "requestedDeliveryDate": "2026-12-24", "notes": "Leave at the door",
    "payment": {"method": "card", "last4": "4242"},
}
BODY = json.dumps(ORDER).encode()


@dataclass
class Target:
    name: str
    url: str
    note: str
    token: str | None = None
    process: subprocess.Popen | None = None
    rounds: list[Result] = field(default_factory=list)
    single: list[Result] = field(default_factory=list)


def start_gateway(workdir: Path, erp_url: str, name: str, *, server: str, full: bool) -> tuple[subprocess.Popen, str]:
    """A gateway process: the full chain (Redis state) or passing through."""
    config: dict = {"store": f"sqlite:///{workdir}/registry.db", "server": server, "max_body_bytes": 1048576,
                    "tokens": {"signing_key_file": str(workdir / "signing-key.pem")},
                    "upstreams": {"erp": {"url": erp_url}}}
    if full:
        config["state"] = {"backend": "redis", "key_prefix": f"govgate-bench:{name}:"}
    else:
        config.update({"authentication": {"required": False}, "request_validation": {"mode": "off"},
                       "rate_limit": {"enabled": False}, "observability": {"usage": False}})
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(config))
    port = free_port()
    process = spawn(["-m", "gateway.cli", "serve", "--config", str(path), "--port", str(port)], cwd=workdir)
    wait_http(f"http://127.0.0.1:{port}/readyz", process=process)
    return process, f"http://127.0.0.1:{port}"


def start_nginx(workdir: Path, upstream_port: int) -> tuple[subprocess.Popen, str] | None:
    """nginx 1 worker as a keep-alive reverse proxy to the upstream, when installed."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if binary is None:
        return None
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/nginx-body;
    proxy_temp_path {workdir}/nginx-proxy;
    upstream erp {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://erp; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
}}
""")
    process = subprocess.Popen([binary, "-c", str(conf), "-p", str(workdir), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    stop(process)
    return None


def seed(workdir: Path, consumer: str = "bench", scope: str = "orders:write",
         contract: str = "erp.sales-orders") -> str:
    """Publish the bundled contracts, a consumer with a high limit subscribed to `contract`; its token."""
    import asyncio

    from gateway.catalog import bundled_catalog, publish_catalog
    from registry.model import NewConsumer, Plan, Subscription
    from registry.service import Registry
    from registry.store import open_store
    from registry.tokens import SigningKey

    async def run() -> None:
        store = open_store(f"sqlite:///{workdir}/registry.db")
        await store.open()
        registry = Registry(store)
        await publish_catalog(registry, bundled_catalog())
        await registry.put_plan(Plan(name="bench", rate_per_second=1_000_000, burst=1_000_000, priority="checkout"))
        await registry.create_consumer(NewConsumer(id=consumer, plan="bench", scopes=[scope]), actor="bench")
        await registry.subscribe(consumer, Subscription(contract=contract, major=1))
        await store.close()

    asyncio.run(run())
    key = SigningKey.load_or_create(workdir / "signing-key.pem")
    return key.issue(issuer="govgate", audience="govgate-gateway", subject=consumer, ttl_seconds=24 * 3600,
                     scope=scope, client_id=consumer)


def wrk_load(url: str, connections: int, seconds: float, token: str | None = None) -> Result:
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    body = BODY.decode().replace("\\", "\\\\").replace('"', '\\"')
    script.write(f'wrk.method = "POST"\nwrk.body = "{body}"\n'
                 'wrk.headers["Content-Type"] = "application/json"\n'
                 + (f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""))
    script.close()
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", script.name, url],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    return Result(rps=rps, p50_ms=pct["50"], p99_ms=pct["99"], errors=errors)


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of one measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per target")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args(argv)
    use_wrk = args.load == "wrk" or (args.load == "auto" and shutil.which("wrk") is not None)
    load = wrk_load if use_wrk else python_load

    processes: list[subprocess.Popen] = []
    workdir = Path(tempfile.mkdtemp(prefix="govgate-bench-"))
    profile: list[str] = []
    try:
        erp_port = free_port()
        erp = spawn(["-m", "gateway.demo.erp", "--port", str(erp_port), "--server", "granian"])
        processes.append(erp)
        erp_url = f"http://127.0.0.1:{erp_port}"
        wait_http(erp_url + "/healthz", process=erp)
        token = seed(workdir)
        targets = [Target("upstream direct", erp_url + "/orders", "sample ERP (granian), no proxy")]
        nginx = start_nginx(workdir, erp_port)
        if nginx is not None:
            processes.append(nginx[0])
            targets.append(Target("nginx", nginx[1] + "/orders", "nginx 1 worker, keep-alive reverse proxy"))
        for name, server, full, note in (
            ("gateway pass-through", "uvicorn", False, "routing, correlation id, proxy; no auth, validation or limit"),
            ("gateway full chain", "uvicorn", True, "JWT, Redis rate limit, validation, metrics, usage, breaker"),
            ("gateway full chain (granian)", "granian", True, "the same under granian"),
        ):
            process, url = start_gateway(workdir, erp_url, name.replace(" ", "_").strip("()"), server=server, full=full)
            processes.append(process)
            targets.append(Target(name, url + "/erp.sales-orders/v1/orders", note, token if full else None, process))
        for target in targets:  # warm up pools, caches and the upstream
            load(target.url, args.connections, 1.0, target.token)
        for _ in range(args.rounds):
            for target in targets:
                target.rounds.append(load(target.url, args.connections, args.seconds, target.token))
                target.single.append(load(target.url, 1, max(2.0, args.seconds / 2), target.token))
        full_chain = next(t for t in targets if t.name == "gateway full chain")
        profile = profile_under_load(full_chain, args, load)
        report = render(targets, args, "wrk" if use_wrk else "python asyncio load generator", profile)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write(args.output, report)
        print(report)
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def profile_under_load(target: Target, args: argparse.Namespace, load: Any) -> list[str]:
    """py-spy's view of the full chain's worker under load: the frames where time is spent."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.path.exists(spy) or target.process is None:
        return ["(py-spy not installed: pip install py-spy)"]
    children = subprocess.run(["pgrep", "-P", str(target.process.pid)], capture_output=True, text=True).stdout.split()
    pid = children[0] if children else str(target.process.pid)  # granian's worker is a child process
    out = Path(tempfile.mkdtemp()) / "profile.txt"
    recorder = subprocess.Popen([spy, "record", "--pid", pid, "--duration", str(int(args.seconds)), "--rate", "250",
                                 "--format", "raw", "--output", str(out), "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    load(target.url, args.connections, args.seconds, target.token)
    recorder.wait(timeout=60)
    if not out.exists():
        return ["(py-spy could not attach)"]
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].split("/")[-1] + ")" if " (" in f else f
                  for f in stack.split(";")]
        total += int(count)
        own[frames[-1]] = own.get(frames[-1], 0) + int(count)
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + int(count)
    ours = [(n, f) for f, n in inclusive.items() if any(m in f for m in ("(proxy.py", "(upstream.py", "policies",
            "(rate_limit", "(authentication", "(request_validation", "(observability", "(tokens.py"))]
    lines = [f"samples: {total}; self time, top 12:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in sorted(own.items(), key=lambda x: -x[1])[:12]]
    lines += ["govgate frames, inclusive time, top 12:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for n, f in sorted(ours, reverse=True)[:12]]
    return lines


def render(targets: list[Target], args: argparse.Namespace, tool: str, profile: list[str]) -> str:
    """The section for docs/benchmarks.md: the table, the targets' verdicts, the profile."""
    median = {t.name: {"rps": statistics.median(r.rps for r in t.rounds),
                       "p50": statistics.median(r.p50_ms for r in t.rounds),
                       "p99": statistics.median(r.p99_ms for r in t.rounds),
                       "p50_1": statistics.median(r.p50_ms for r in t.single)} for t in targets}
    direct = median["upstream direct"]
    lines = [
        "<!-- gateway-throughput: generated by `make bench` (tests/bench/run.py); do not edit by hand -->",
        "## Gateway throughput: upstream direct, nginx and the gateway",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({platform.machine()}, "
        f"Python {platform.python_version()}), load from {tool}, one worker per process. "
        f"`POST /orders` with a {len(BODY)} B order (8 lines); {args.rounds} interleaved rounds of "
        f"{args.seconds:g} s, medians shown.",
        "",
        f"| target | what runs | req/s at {args.connections} conn | vs direct | vs nginx | p50 ms | p99 ms "
        "| p50 ms at 1 conn | added p50 at 1 conn |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    nginx = median.get("nginx")
    for target in targets:
        m = median[target.name]
        errors = sum(r.errors for r in target.rounds + target.single)
        flag = f" ({errors} non-2xx)" if errors else ""
        versus_nginx = f"{m['rps'] / nginx['rps']:.0%}" if nginx else "n/a"
        lines.append(f"| {target.name}{flag} | {target.note} | {m['rps']:,.0f} | {m['rps'] / direct['rps']:.0%} | "
                     f"{versus_nginx} | {m['p50']:.2f} | {m['p99']:.2f} | {m['p50_1']:.2f} | "
                     f"{m['p50_1'] - direct['p50_1']:+.2f} |")
    full = median.get("gateway full chain")
    if full:
        lines += ["", "Targets of the policies issue, full chain (uvicorn, the default server):"]
        if nginx:
            lines.append(f"- at least 30% of nginx's throughput at {args.connections} connections: "
                         f"{full['rps'] / nginx['rps']:.0%} ({'met' if full['rps'] >= 0.3 * nginx['rps'] else 'NOT met'})")
        lines.append(f"- p99 under 50 ms: {full['p99']:.1f} ms ({'met' if full['p99'] < 50 else 'NOT met'})")
        added = full["p50_1"] - direct["p50_1"]
        lines.append(f"- adds at most 1 ms to p50 at one connection: {added:+.2f} ms "
                     f"({'met' if added <= 1.0 else 'NOT met'})")
    lines += ["", "Rounds (req/s at full concurrency): " + "; ".join(
        f"{t.name}: " + ", ".join(f"{r.rps:,.0f}" for r in t.rounds) for t in targets), ""]
    if profile:
        lines += ["Profile of the full chain's worker under load (py-spy, "
                  f"{int(args.seconds)} s at {args.connections} connections):", "", "```", *profile, "```", ""]
    lines += [f"Command: `make bench` (= `.venv/bin/python -m tests.bench.run --seconds {args.seconds:g} "
              f"--rounds {args.rounds} --connections {args.connections}`).", ""]
    return "\n".join(lines)


def write(path: Path, section: str) -> None:
    """Replace this benchmark's section in docs/benchmarks.md, keeping the rest of the file."""
    marker = section.splitlines()[0]
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    start = text.find(marker)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("<!-- ", start + len(marker))
        text = text[:start] + section + ("\n" + text[end:] if end != -1 else "")
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
