"""The audit log: every state change, hash-chained so that an edited or deleted record shows.

Each record carries the hash of the one before; its own hash covers its sequence number,
time, actor, action, target, before, after, reason, correlation id and that previous hash.
A separate head (last sequence number and hash) is written in the same transaction, so
cutting records off the end shows too.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

GENESIS = "0" * 64
# set by the HTTP layer for each request, read when an audit record is written
correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("govgate_correlation_id", default="")


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A state change about to be recorded."""

    actor: str
    action: str  # e.g. version.proposed, change.approved, version.published
    target: str  # e.g. erp.sales-orders@2.0.0, change/3f2a…, consumer/channel-checkout
    before: Any = None
    after: Any = None
    reason: str = ""


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded state change with its place in the chain."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    before: Any
    after: Any
    reason: str
    correlation_id: str
    prev_hash: str
    hash: str


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of checking the chain."""

    ok: bool
    records: int
    problems: list[str]


def timestamp(moment: datetime) -> str:
    """The one text form of a record's time that its hash covers (always with microseconds)."""
    return moment.isoformat(timespec="microseconds")


def record_hash(seq: int, at: str, entry: AuditEntry, correlation: str, prev_hash: str) -> str:
    """The hash of a record's content and its predecessor's hash."""
    content = {"seq": seq, "at": at, "actor": entry.actor, "action": entry.action, "target": entry.target,
               "before": entry.before, "after": entry.after, "reason": entry.reason,
               "correlation_id": correlation, "prev_hash": prev_hash}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def verify(records: list[AuditRecord], head: tuple[int, str] | None) -> Verification:
    """Check sequence, linkage and every hash; compare the end with the head written alongside."""
    problems: list[str] = []
    previous, expected_seq = GENESIS, 1
    for record in records:
        if record.seq != expected_seq:
            problems.append(f"record {expected_seq} is missing (found {record.seq} next)")
        if record.prev_hash != previous:
            problems.append(f"record {record.seq} does not follow its predecessor's hash")
        entry = AuditEntry(actor=record.actor, action=record.action, target=record.target, before=record.before,
                           after=record.after, reason=record.reason)
        if record_hash(record.seq, timestamp(record.at), entry, record.correlation_id, record.prev_hash) != record.hash:
            problems.append(f"record {record.seq} was altered (its content does not match its hash)")
        previous, expected_seq = record.hash, record.seq + 1
    if head is not None and (head[0] != (records[-1].seq if records else 0) or head[1] != previous):
        problems.append(f"the chain ends at record {records[-1].seq if records else 0}, "
                        f"but the head says {head[0]}: records were cut off the end")
    return Verification(ok=not problems, records=len(records), problems=problems)


# Which audit records a store method's result produces, shared by every backend: a method
# takes the entry to record and `_transaction` appends what the rule returns, in the same
# transaction as the change.
AuditRule = Callable[[Any], list[AuditEntry]] | None


def always(entry: AuditEntry | None) -> AuditRule:
    """Record the entry whatever the result."""
    return (lambda _: [entry]) if entry else None


def when_created(entry: AuditEntry | None) -> AuditRule:
    """For (row, created) results: record only what was really created."""
    return (lambda result: [entry] if result[1] else []) if entry else None


def when_present(entry: AuditEntry | None) -> AuditRule:
    """For compare-and-set results: record only when the row changed (the result is not None)."""
    return (lambda result: [entry] if result is not None else []) if entry else None


def when_truthy(entry: AuditEntry | None) -> AuditRule:
    """For boolean results (something was deleted, added): record only when it happened."""
    return (lambda changed: [entry] if changed else []) if entry else None


def when_vote_recorded(entry: AuditEntry | None) -> AuditRule:
    """For a vote: the vote itself, and the decision when it closed the request."""
    def entries(result: tuple[Any, str]) -> list[AuditEntry]:
        change, outcome = result
        if outcome != "recorded" or change is None or entry is None:
            return []
        closing = [] if change.state == "open" else [AuditEntry(
            actor=entry.actor, action=f"change.{change.state}", target=entry.target, before="open",
            after=change.state)]
        return [entry, *closing]

    return entries if entry else None
