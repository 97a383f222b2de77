"""The demo's downstream: reads `inventory.adjusted` through govgate and applies it to the sample ERP's stock.

    python -m gateway.demo.inventory_consumer --gateway URL --erp URL [--group erp-stock] [--parent PID]

The gateway token comes from GOVGATE_TOKEN (a consumer subscribed to events.inventory-adjusted v1 with
the scope events:consume). Each delivery is applied once per event (the ERP keeps the event ids it
applied, so a re-delivery changes nothing) and acknowledged only after the ERP answered; a crash before
the acknowledgement means the entry comes again after the visibility timeout. Gaps and reordering in
`govgatesequence` per subject are logged.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

CONTRACT = "events.inventory-adjusted"
log = logging.getLogger("govgate.demo.consumer")


def call(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    """One JSON request; (status, decoded body)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class InventoryConsumer:
    """Reads one batch from the group, applies each adjustment to the ERP, acknowledges what was applied."""

    def __init__(self, gateway: str, erp: str, token: str, group: str, worker: str, count: int = 50) -> None:
        self.stream = f"{gateway.rstrip('/')}/events/{CONTRACT}/v1"
        self.erp = erp.rstrip("/")
        self.token = token
        self.group = group
        self.worker = worker
        self.count = count
        self.last_sequence: dict[str, int] = {}

    def poll(self) -> int:
        """Handle one batch; how many entries were applied and acknowledged."""
        status, answer = call("GET", f"{self.stream}?group={self.group}&consumer={self.worker}&count={self.count}",
                              token=self.token)
        if status != 200:
            log.warning("reading the stream answered %s: %s", status, answer)
            return 0
        done = []
        for delivery in answer["events"]:
            event = delivery["event"]
            self.check_order(event)
            data = event["data"]
            applied, result = call("POST", f"{self.erp}/_admin/stock-adjustments", {
                "eventId": f"{event['source']} {event['id']}", "sku": data["sku"], "location": data["location"],
                "delta": data["delta"], "reason": data["reason"]})
            if applied == 200:
                done.append(delivery["streamId"])
                log.info("applied %s %+d at %s (on hand now %s)", data["sku"], data["delta"], data["location"],
                         result["onHandAfter"])
            else:  # left unacknowledged: delivered again after the visibility timeout, dead-lettered in the end
                log.warning("the ERP refused %s: %s", delivery["streamId"], result)
        if done:
            call("POST", f"{self.stream}/ack", {"group": self.group, "ids": done}, token=self.token)
        return len(done)

    def check_order(self, event: dict[str, Any]) -> None:
        """Log a gap or a step back in the subject's sequence numbers."""
        subject, sequence = event.get("subject", ""), event.get("govgatesequence", 0)
        last = self.last_sequence.get(subject)
        if last is not None and sequence != last + 1:
            log.warning("subject %r: sequence %s after %s (%s)", subject, sequence, last,
                        "re-delivery or reordering" if sequence <= last else "gap: an earlier event is pending")
        self.last_sequence[subject] = max(sequence, last or 0)


def main(argv: list[str] | None = None) -> int:
    """Poll until the parent process (the demo) goes away."""
    parser = argparse.ArgumentParser(prog="python -m gateway.demo.inventory_consumer",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--erp", required=True)
    parser.add_argument("--group", default="erp-stock")
    parser.add_argument("--consumer", default=f"worker-{os.getpid()}")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between reads that found nothing")
    parser.add_argument("--parent", type=int, help="exit when this process is gone")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s")
    token = os.environ.get("GOVGATE_TOKEN")
    if not token:
        print("set GOVGATE_TOKEN to a gateway token with events:consume", file=sys.stderr)
        return 2
    consumer = InventoryConsumer(args.gateway, args.erp, token, args.group, args.consumer)
    while args.parent is None or os.getppid() == args.parent:
        try:
            if consumer.poll():
                continue
        except (OSError, ValueError, KeyError) as exc:  # the gateway is starting or restarting
            log.debug("poll failed: %r", exc)
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
