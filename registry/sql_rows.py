"""Rows of the registry's SQL tables, and the models they become; the same for every dialect.

SQLite hands back times and dates as ISO text, PostgreSQL as objects: both become aware UTC values.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import msgspec

from registry.audit import AuditRecord
from registry.model import AffectedConsumer, ChangeRequest, Contract, Usage, Verification, Version, Vote
from registry.webhooks import Delivery, Webhook

Row = tuple[Any, ...]

CONTRACT_COLUMNS = "name, kind, owner, description, upstream, created_at, created_by, compatibility"
VERSION_COLUMNS = ("contract, version, major, sha256, state, created_at, created_by, published_at, base_version,"
                   " required_bump, deprecated_at, sunset, successor")
CHANGE_COLUMNS = ("id, contract, version, base_version, state, proposer, proposer_team, required_approvals,"
                  " required_bump, findings, changes, lint, affected, created_at, updated_at, row_version")
VOTE_COLUMNS = "voter, decision, comment, at"
AUDIT_COLUMNS = "seq, at, actor, action, target, before, after, reason, correlation_id, prev_hash, hash"
DELIVERY_COLUMNS = ("d.id, d.webhook, d.event_id, d.event_type, d.state, d.attempts, d.next_attempt_at,"
                    " d.last_status, d.last_error, d.created_at, d.delivered_at")
USAGE_COLUMNS = "consumer, contract, major, operation, count, errors, first_seen, last_seen"
VERIFICATION_COLUMNS = "contract, version, environment, passed, base_url, summary, recorded_at, recorded_by"
WEBHOOK_COLUMNS = "id, url, events, created_at, created_by"


def placeholders(columns: str) -> str:
    """`?, ?, …`: one per column of a column list."""
    return ", ".join("?" for _ in columns.split(","))


def moment(value: Any) -> datetime:
    """A stored time as an aware UTC datetime, whatever the session's time zone."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value.astimezone(UTC)


def maybe_moment(value: Any) -> datetime | None:
    """A nullable stored time."""
    return moment(value) if value else None


def day(value: Any) -> date | None:
    """A nullable stored date."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def maybe_json(text: str | None) -> Any:
    """A nullable JSON column."""
    return json.loads(text) if text else None


def contract(row: Row) -> Contract:
    name, kind, owner, description, upstream, created_at, created_by, compatibility = row
    return Contract(name=name, kind=kind, owner=owner, description=description, upstream=upstream,
                    created_at=moment(created_at), created_by=created_by, compatibility=compatibility)


def version(row: Row) -> Version:
    (contract, number, major, sha, state, created_at, created_by, published_at, base_version, bump,
     deprecated_at, sunset, successor) = row
    return Version(contract=contract, version=number, major=major, sha256=sha, state=state,
                   created_at=moment(created_at), created_by=created_by, published_at=maybe_moment(published_at),
                   base_version=base_version, required_bump=bump, deprecated_at=maybe_moment(deprecated_at),
                   sunset=day(sunset), successor=successor)


def change(row: Row, votes: list[Row]) -> ChangeRequest:
    (cid, contract, number, base, state, proposer, team, required, bump, findings, changes, lint, affected,
     created, updated, row_version) = row
    return ChangeRequest(
        id=cid, contract=contract, version=number, base_version=base, state=state, proposer=proposer,
        proposer_team=team, required_approvals=required, required_bump=bump, findings=json.loads(findings),
        changes=maybe_json(changes), lint=maybe_json(lint),
        affected_consumers=msgspec.json.decode(affected, type=list[AffectedConsumer]),
        votes=[Vote(voter=v, decision=d, comment=c, at=moment(a)) for v, d, c, a in votes],
        created_at=moment(created), updated_at=moment(updated), row_version=row_version)


def audit_record(row: Row) -> AuditRecord:
    seq, at, actor, action, target, before, after, reason, correlation, prev_hash, digest = row
    return AuditRecord(seq=seq, at=moment(at), actor=actor, action=action, target=target, before=maybe_json(before),
                       after=maybe_json(after), reason=reason, correlation_id=correlation, prev_hash=prev_hash,
                       hash=digest)


def delivery(row: Row) -> Delivery:
    (delivery_id, webhook, event_id, event_type, state, attempts, next_at, status, error, created,
     delivered) = row
    return Delivery(id=delivery_id, webhook=webhook, event_id=event_id, event_type=event_type, state=state,
                    attempts=attempts, next_attempt_at=maybe_moment(next_at), last_status=status,
                    last_error=error, created_at=moment(created), delivered_at=maybe_moment(delivered))


def webhook(row: Row) -> Webhook:
    hook_id, url, events, created_at, created_by = row
    return Webhook(id=hook_id, url=url, events=json.loads(events), created_at=moment(created_at),
                   created_by=created_by)


def usage(row: Row) -> Usage:
    consumer, contract, major, operation, count, errors, first_seen, last_seen = row
    return Usage(consumer=consumer, contract=contract, major=major, operation=operation, count=count,
                 errors=errors, first_seen=moment(first_seen), last_seen=moment(last_seen))


def verification(row: Row) -> Verification:
    contract, number, environment, passed, base_url, summary, recorded_at, recorded_by = row
    return Verification(contract=contract, version=number, environment=environment, passed=bool(passed),
                        base_url=base_url, summary=summary, recorded_at=moment(recorded_at), recorded_by=recorded_by)
