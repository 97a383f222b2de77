"""Webhooks: CloudEvents 1.0 JSON for workflow events, HMAC-signed, retried with backoff.

Deliveries are written in the same transaction as the audit record of the state change
they announce (an outbox), so an event is never lost nor sent for a change that rolled
back. A worker posts due deliveries and reschedules failures with exponential backoff;
every attempt is in the delivery log.

The signing secret of a webhook is derived from govgate's signing key and the webhook's
id (HMAC), shown once when the webhook is created, and never stored.

    Govgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec

log = logging.getLogger("govgate.webhooks")

# audit action -> CloudEvents type
EVENT_TYPES = {
    "version.proposed": "dev.govgate.change.opened",
    "change.approved": "dev.govgate.change.approved",
    "change.rejected": "dev.govgate.change.rejected",
    "version.published": "dev.govgate.version.published",
    "version.deprecated": "dev.govgate.version.deprecated",
    "version.retired": "dev.govgate.version.retired",
}
EventType = Literal["dev.govgate.change.opened", "dev.govgate.change.approved", "dev.govgate.change.rejected",
                    "dev.govgate.version.published", "dev.govgate.version.deprecated", "dev.govgate.version.retired"]
MAX_ATTEMPTS = 8


class NewWebhook(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What an admin sends to subscribe a URL to events."""

    url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s]{1,2000}$")]
    events: Annotated[list[EventType], msgspec.Meta(min_length=1)]


class Webhook(msgspec.Struct, frozen=True, kw_only=True):
    """A subscription of a URL to workflow events."""

    id: str
    url: str
    events: list[str]
    created_at: datetime
    created_by: str


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One event on its way to one webhook, with its attempts."""

    id: int
    webhook: str
    event_id: str
    event_type: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None


def cloud_event(seq: int, action: str, target: str, actor: str, after: Any, reason: str, correlation: str,
                at: str) -> dict[str, Any]:
    """The CloudEvents 1.0 structured JSON for one audit record."""
    return {"specversion": "1.0", "id": f"audit-{seq}", "source": "/govgate/registry", "type": EVENT_TYPES[action],
            "time": at, "subject": target, "datacontenttype": "application/json",
            "data": {"actor": actor, "change": after, "reason": reason, "correlationId": correlation}}


def secret_for(signing_key_bytes: bytes, webhook_id: str) -> str:
    """The webhook's signing secret, derived (never stored)."""
    return hmac.new(hashlib.sha256(signing_key_bytes).digest(), webhook_id.encode(), hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The Govgate-Signature header value."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def backoff(attempts: int) -> timedelta:
    """Wait before the next attempt: 1 s, 2 s, 4 s, ... up to 10 minutes."""
    return timedelta(seconds=min(600, 2 ** (attempts - 1)))


async def deliver_due(store: Any, secret: Any, *, limit: int = 32) -> int:
    """Post every due delivery once; record the outcome. Returns how many were tried."""
    import aiohttp

    due = await store.due_deliveries(datetime.now(UTC), limit)
    if not due:
        return 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(*(_post(session, store, secret, delivery, url, payload)
                               for delivery, url, payload in due))
    return len(due)


async def _post(session: Any, store: Any, secret: Any, delivery: Delivery, url: str, payload: bytes) -> None:
    now = int(time.time())
    headers = {"Content-Type": "application/cloudevents+json", "Govgate-Signature": signature(
        secret(delivery.webhook), payload, now), "Govgate-Delivery": str(delivery.id)}
    status, error = None, ""
    try:
        async with session.post(url, data=payload, headers=headers, allow_redirects=False) as response:
            status = response.status
    except Exception as exc:  # any failure is the receiver's: log it, retry later
        error = f"{type(exc).__name__}: {exc}"[:500]
    attempts = delivery.attempts + 1
    if status is not None and 200 <= status < 300:
        await store.mark_delivery(delivery.id, "delivered", attempts, None, status, "")
        return
    state = "failed" if attempts >= MAX_ATTEMPTS else "pending"
    next_at = None if state == "failed" else datetime.now(UTC) + backoff(attempts)
    await store.mark_delivery(delivery.id, state, attempts, next_at, status, error or f"HTTP {status}")
    log.warning("webhook delivery %s to %s failed (attempt %s): %s", delivery.id, url, attempts, error or status)


async def run(store: Any, secret: Any, every_seconds: float = 0.5) -> None:
    """The delivery loop, until cancelled."""
    while True:
        try:
            await deliver_due(store, secret)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the webhook worker failed; going on")
        await asyncio.sleep(every_seconds)
