"""`make bench`: upstream direct vs gateway, side by side in one run, into docs/benchmarks.md.

Every target is a real process with one worker: the sample ERP upstream, the gateway
with request validation off, and the gateway with validation on (under granian and under
uvicorn, which is how the default server was chosen). Load comes from wrk when it is
installed, otherwise from a small asyncio load generator. Rounds are interleaved and the
median is reported, because the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

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
    rounds: list[Result] = field(default_factory=list)
    single: list[Result] = field(default_factory=list)


def start_gateway(workdir: Path, erp_url: str, name: str, *, server: str, validation: str) -> tuple[subprocess.Popen, str]:
    config = {"store": f"sqlite:///{workdir}/registry.db", "server": server, "max_body_bytes": 1048576,
              "request_validation": {"mode": validation}, "upstreams": {"erp": {"url": erp_url}}}
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(config))
    port = free_port()
    process = spawn(["-m", "gateway.cli", "serve", "--config", str(path), "--port", str(port)], cwd=workdir)
    wait_http(f"http://127.0.0.1:{port}/readyz", process=process)
    return process, f"http://127.0.0.1:{port}"


def seed(workdir: Path) -> None:
    """Publish the bundled contracts into the store the gateways share."""
    import asyncio

    from gateway.catalog import bundled_catalog, publish_catalog
    from registry.service import Registry
    from registry.store import open_store

    async def run() -> None:
        store = open_store(f"sqlite:///{workdir}/registry.db")
        await store.open()
        await publish_catalog(Registry(store), bundled_catalog())
        await store.close()

    asyncio.run(run())


def wrk_load(url: str, connections: int, seconds: float) -> Result:
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    body = BODY.decode().replace("\\", "\\\\").replace('"', '\\"')
    script.write(f'wrk.method = "POST"\nwrk.body = "{body}"\n'
                 'wrk.headers["Content-Type"] = "application/json"\n')
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
    try:
        erp_port = free_port()
        erp = spawn(["-m", "gateway.demo.erp", "--port", str(erp_port), "--server", "granian"])
        processes.append(erp)
        erp_url = f"http://127.0.0.1:{erp_port}"
        wait_http(erp_url + "/healthz", process=erp)
        seed(workdir)
        targets = [Target("upstream direct", erp_url + "/orders", "sample ERP (granian), no gateway")]
        for name, server, validation, note in (
            ("gateway, no validation", "granian", "off", "granian, correlation id, routing, proxy"),
            ("gateway + validation", "granian", "enforce", "granian, the default chain"),
            ("gateway + validation (uvicorn)", "uvicorn", "enforce", "the same under uvicorn"),
        ):
            process, url = start_gateway(workdir, erp_url, name.replace(" ", "_"), server=server, validation=validation)
            processes.append(process)
            targets.append(Target(name, url + "/erp.sales-orders/v1/orders", note))
        for target in targets:  # warm up pools, caches and JITs of the upstream
            load(target.url, args.connections, 1.0)
        for _ in range(args.rounds):
            for target in targets:
                target.rounds.append(load(target.url, args.connections, args.seconds))
                target.single.append(load(target.url, 1, max(2.0, args.seconds / 2)))
        report = render(targets, args, "wrk" if use_wrk else "python asyncio load generator")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write(args.output, report)
        print(report)
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def render(targets: list[Target], args: argparse.Namespace, tool: str) -> str:
    direct = statistics.median(r.rps for r in targets[0].rounds)
    direct_p50_1 = statistics.median(r.p50_ms for r in targets[0].single)
    lines = [
        "<!-- gateway-throughput: generated by `make bench` (tests/bench/run.py); do not edit by hand -->",
        "## Gateway throughput: upstream direct vs gateway",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({platform.machine()}, "
        f"Python {platform.python_version()}), load from {tool}, one worker per process. "
        f"`POST /orders` with a {len(BODY)} B order (8 lines); {args.rounds} interleaved rounds of "
        f"{args.seconds:g} s, medians shown.",
        "",
        f"| target | what runs | req/s at {args.connections} conn | vs direct | p50 ms | p99 ms | p50 ms at 1 conn | added p50 at 1 conn |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for target in targets:
        rps = statistics.median(r.rps for r in target.rounds)
        p50 = statistics.median(r.p50_ms for r in target.rounds)
        p99 = statistics.median(r.p99_ms for r in target.rounds)
        p50_1 = statistics.median(r.p50_ms for r in target.single)
        errors = sum(r.errors for r in target.rounds + target.single)
        flag = f" ({errors} non-2xx)" if errors else ""
        lines.append(f"| {target.name}{flag} | {target.note} | {rps:,.0f} | {rps / direct:.0%} | {p50:.2f} | "
                     f"{p99:.2f} | {p50_1:.2f} | {p50_1 - direct_p50_1:+.2f} |")
    lines += ["", "Rounds (req/s at full concurrency): " + "; ".join(
        f"{t.name}: " + ", ".join(f"{r.rps:,.0f}" for r in t.rounds) for t in targets), "",
        f"Command: `make bench` (= `.venv/bin/python -m tests.bench.run --seconds {args.seconds:g} "
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
