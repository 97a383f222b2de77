"""Registry operations and their rules, over any Store."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from registry import audit as audit_log
from registry import documents, tokens
from registry.approvals import ApprovalPolicy
from registry.audit import AuditEntry, AuditRecord
from registry.audit import Verification as ChainVerification
from registry.webhooks import Delivery, NewWebhook, Webhook
from registry.compat.engine import DiffTooLarge, diff_openapi
from registry.compat.events import diff_event_schemas
from registry.compat.model import Report
from registry.errors import Conflict, Forbidden, InvalidDocument, InvalidRequest, NotFound, PreconditionFailed
from registry.model import (
    RESERVED_NAMES,
    AffectedConsumer,
    ChangeRequest,
    Consumer,
    ContractKind,
    Contract,
    Deprecation,
    NewChange,
    NewConsumer,
    NewContract,
    NewVerification,
    NewVersion,
    Plan,
    Retirement,
    SemVer,
    Subscription,
    Verification,
    Version,
    Vote,
)
from registry.store import Store
from registry.workflow import PUBLISHABLE_FROM

Listener = Callable[[], Awaitable[None]]
Linter = Callable[[dict[str, Any], ContractKind], dict[str, Any]]  # (document, kind) -> report with "blocking"


class Registry:
    """Contracts and versions with their rules: immutable versions, guarded publishing."""

    def __init__(self, store: Store, *, min_sunset_days: int = 30, review: bool = True,
                 approvals: ApprovalPolicy | None = None, linter: Linter | None = None,
                 publish_requires_verification: tuple[str, ...] = ()) -> None:
        self.store = store
        self.publish_requires_verification = publish_requires_verification
        self.min_sunset_days = min_sunset_days
        self.review = review
        self.approvals = approvals or ApprovalPolicy()
        self.linter = linter
        self._listeners: list[Listener] = []

    def on_change(self, listener: Listener) -> None:
        """Call `listener` after every change the gateway serves from: publications, consumers, plans."""
        self._listeners.append(listener)

    async def _changed(self) -> None:
        for listener in self._listeners:
            await listener()

    async def create_contract(self, new: NewContract, *, actor: str) -> tuple[Contract, bool]:
        """Register a contract; the same definition again is a no-op, another is 409."""
        if new.kind == "openapi" and new.upstream is None:
            raise InvalidRequest("an openapi contract needs an upstream")
        if new.name in RESERVED_NAMES:
            raise InvalidRequest(f"{new.name!r} is a path the gateway serves itself; reserved: "
                                 f"{sorted(RESERVED_NAMES)}")
        contract, created = await self.store.create_contract(new, actor=actor, audit=AuditEntry(
            actor=actor, action="contract.created", target=f"contract/{new.name}", after=msgspec.to_builtins(new)))
        if not created and _definition(contract) != _definition(new):
            raise Conflict(f"contract {new.name!r} exists with another definition")
        return contract, created

    async def contract(self, name: str) -> Contract:
        """One contract or NotFound."""
        contract = await self.store.get_contract(name)
        if contract is None:
            raise NotFound(f"no contract named {name!r}")
        return contract

    async def add_version(
        self, name: str, document: dict[str, Any], *, version: str | None, actor: str, team: str | None = None,
        review: bool | None = None,
    ) -> tuple[Version, bool, ChangeRequest | None]:
        """Check and store a document as a version; same content again is a no-op, other content 409.

        With review (the default), adding is proposing: the version goes in_review and a change
        request opens with the diff, the lint report, the affected consumers and the approvals
        it needs. Lint errors, or a breaking change without a major bump, refuse the proposal.
        """
        review = self.review if review is None else review
        contract = await self.contract(name)
        version = _version_of(contract, document, version)
        semver = SemVer.parse(version)
        if contract.kind == "openapi":
            documents.check_openapi(document)
        else:
            documents.check_event_schema(document)
        canonical = documents.canonical_json(document)
        digest = documents.sha256(canonical)
        existing = await self.store.get_version(name, version)
        if existing is not None:  # the same content again is a no-op: no need to diff
            stored = self._same_or_conflict(existing, digest, name, version)
            return stored, False, await self.store.change_for(name, version)
        base, report = await self._compare(contract, semver, document)
        lint = self.linter(document, contract.kind) if self.linter and review else None
        if lint is not None and lint.get("blocking"):
            raise InvalidDocument("the proposal has lint errors", [f"{f['rule']} at {f['path'] or '/'}: {f['message']}"
                                                                    for f in lint["findings"]
                                                                    if f["severity"] == "error"])
        if review and report is not None and any(c.id == "semver-bump-too-small" for c in report.changes):
            taken = [v.version for v in await self.store.list_versions(name)]
            raise InvalidRequest(f"{version} is a {report.semver['proposed_bump']} bump, but its changes need a "
                                 f"{report.semver['required_bump']} bump: propose {_next(base, report, taken)} "
                                 "instead")
        new = NewVersion(contract=name, version=version, major=semver.major, document=canonical, sha256=digest,
                         base_version=base, required_bump=report.semver["required_bump"] if report else None,
                         changes=msgspec.json.encode(report).decode() if report else None)
        change = await self._change_request(contract, base, report, lint, actor, team) if review else None
        stored, created = await self.store.add_version(
            new, actor=actor, state="in_review" if review else "draft", change=change,
            audit=AuditEntry(actor=actor, action="version.proposed" if review else "version.added",
                             target=f"{name}@{version}", after={"sha256": digest, "change": change.id if change
                                                                 else None, "base": base}))
        stored = self._same_or_conflict(stored, digest, name, version)
        return stored, created, await self.store.change_for(name, version)

    async def _change_request(self, contract: Contract, base: str | None, report: Report | None,
                              lint: dict[str, Any] | None, actor: str, team: str | None) -> NewChange:
        findings = report.summary if report else {}
        worst = None if report is None else next((lvl for lvl in ("ERR", "WARN", "INFO") if findings.get(lvl)), "none")
        return NewChange(
            id=uuid.uuid4().hex[:12], proposer=actor, proposer_team=team, required_approvals=self.approvals.required(worst),
            required_bump=(report.semver["required_bump"] if report else None) or "major", findings=dict(findings),
            changes=msgspec.to_builtins(report) if report else None, lint=lint,
            affected_consumers=await self._affected(contract, base, report))

    async def _affected(self, contract: Contract, base: str | None, report: Report | None) -> list[AffectedConsumer]:
        """Who really calls the operations the change breaks (ERR findings), from the usage records."""
        if report is None or base is None or contract.kind != "openapi":
            return []
        broken = {c.operation for c in report.changes if c.level == "ERR" and c.operation}
        if not broken:
            return []
        document = json.loads(await self.store.get_document(contract.name, base) or "{}")
        operation_ids = {}
        for path, item in (document.get("paths") or {}).items():
            for method, operation in item.items():
                if isinstance(operation, dict) and f"{method.upper()} {path}" in broken:
                    operation_ids[operation.get("operationId", "")] = f"{method.upper()} {path}"
        major = SemVer.parse(base).major
        return [AffectedConsumer(consumer=u.consumer, operation=operation_ids[u.operation], calls=u.count,
                                 last_seen=u.last_seen)
                for u in await self.store.list_usage(contract.name)
                if u.major == major and u.operation in operation_ids]

    async def change(self, change_id: str) -> ChangeRequest:
        """One change request or NotFound."""
        change = await self.store.get_change(change_id)
        if change is None:
            raise NotFound(f"no change request {change_id!r}")
        return change

    async def vote(self, change_id: str, decision: str, comment: str, *, voter: str, team: str | None,
                   expected_row_version: int | None = None) -> ChangeRequest:
        """Record a board member's approval or rejection; separation of duties applies."""
        change = await self.change(change_id)
        contract = await self.contract(change.contract)
        if voter == change.proposer:
            raise Forbidden("you proposed this change: someone else must review it (separation of duties)")
        if decision == "approve" and team is not None and team == contract.owner:
            raise Forbidden(f"members of the owning team {contract.owner!r} cannot approve its changes")
        vote = Vote(voter=voter, decision=decision, comment=comment, at=datetime.now(UTC))  # type: ignore[arg-type]
        updated, outcome = await self.store.vote(
            change_id, vote, expected_row_version=expected_row_version,
            audit=AuditEntry(actor=voter, action=f"change.{decision}-vote", target=f"change/{change_id}",
                             after={"decision": decision, "comment": comment}, reason=comment))
        if outcome == "stale":
            raise PreconditionFailed(f"change request {change_id} changed meanwhile (now at row version "
                                     f"{updated.row_version if updated else '?'}); read it again")
        if outcome == "closed":
            raise Conflict(f"change request {change_id} is {updated.state if updated else 'closed'}; "
                           "only an open request takes votes")
        if outcome == "duplicate":
            raise Conflict(f"{voter} has voted on change request {change_id} already")
        if updated is None:
            raise NotFound(f"no change request {change_id!r}")
        await self._changed()
        return updated

    async def withdraw(self, change_id: str, *, actor: str, admin: bool, reason: str = "") -> ChangeRequest:
        """The proposer (or an admin) takes an open change request back."""
        change = await self.change(change_id)
        if actor != change.proposer and not admin:
            raise Forbidden("only the proposer or an admin may withdraw a change request")
        updated = await self.store.close_change(
            change_id, "withdrawn", expected="open", version_state="withdrawn",
            audit=AuditEntry(actor=actor, action="change.withdrawn", target=f"change/{change_id}", before="open",
                             after="withdrawn", reason=reason))
        if updated is None:
            raise Conflict(f"change request {change_id} is {change.state}; allowed from: open")
        return updated

    async def create_webhook(self, new: NewWebhook, *, actor: str) -> Webhook:
        """Subscribe a URL to workflow events."""
        webhook = Webhook(id=uuid.uuid4().hex[:12], url=new.url, events=sorted(set(new.events)),
                          created_at=datetime.now(UTC), created_by=actor)
        await self.store.create_webhook(webhook, audit=AuditEntry(
            actor=actor, action="webhook.created", target=f"webhook/{webhook.id}",
            after={"url": webhook.url, "events": webhook.events}))
        return webhook

    async def delete_webhook(self, webhook_id: str, *, actor: str) -> None:
        """Stop a subscription and drop its pending deliveries."""
        if not await self.store.delete_webhook(webhook_id, audit=AuditEntry(
                actor=actor, action="webhook.deleted", target=f"webhook/{webhook_id}")):
            raise NotFound(f"no webhook {webhook_id!r}")

    async def deliveries(self, webhook_id: str) -> list[Delivery]:
        """A webhook's delivery log, newest first."""
        if not any(w.id == webhook_id for w in await self.store.list_webhooks()):
            raise NotFound(f"no webhook {webhook_id!r}")
        return await self.store.list_deliveries(webhook_id)

    async def audit(self, **filters: Any) -> list[AuditRecord]:
        """Audit records, oldest first, filtered by target, actor or action."""
        return await self.store.list_audit(**filters)

    async def verify_audit(self) -> ChainVerification:
        """Walk the whole chain."""
        records: list[AuditRecord] = []
        after = 0
        while batch := await self.store.list_audit(after_seq=after, limit=5000):
            records += batch
            after = batch[-1].seq
        return audit_log.verify(records, await self.store.audit_head())

    async def changes(self, name: str, version: str) -> bytes:
        """The compatibility report stored with a version (JSON), `null` for a first version."""
        await self.version(name, version)
        return (await self.store.get_changes(name, version) or "null").encode()

    async def _compare(self, contract: Contract, semver: SemVer, document: dict[str, Any]
                       ) -> tuple[str | None, Report | None]:
        """Diff against the version this one replaces: the newest published below it, else the newest below it."""
        earlier = [(SemVer.parse(v.version), v) for v in await self.store.list_versions(contract.name)
                   if v.state not in ("rejected", "withdrawn") and SemVer.parse(v.version) < semver]
        if not earlier:
            return None, None
        earlier.sort(key=lambda pair: pair[0])
        published = [v for _, v in earlier if v.state in ("published", "deprecated")]
        base = published[-1] if published else earlier[-1][1]
        base_document = json.loads(await self.store.get_document(contract.name, base.version) or "{}")
        try:
            if contract.kind == "openapi":
                return base.version, diff_openapi(base_document, document)
            history = [json.loads(await self.store.get_document(contract.name, v.version) or "{}")
                       for _, v in earlier]
            return base.version, diff_event_schemas(history if contract.compatibility.endswith("_TRANSITIVE")
                                                    else [base_document], document, mode=contract.compatibility,
                                                    old_version=base.version, new_version=str(semver))
        except DiffTooLarge as exc:
            raise InvalidDocument(f"the proposal cannot be compared with {base.version}: {exc}") from None

    @staticmethod
    def _same_or_conflict(stored: Version, digest: str, name: str, version: str) -> Version:
        if stored.sha256 != digest:
            raise Conflict(f"{name}@{version} exists with other content; versions are immutable, propose a new one")
        return stored

    async def version(self, name: str, version: str) -> Version:
        """One version or NotFound."""
        found = await self.store.get_version(name, version)
        if found is None:
            await self.contract(name)
            raise NotFound(f"contract {name!r} has no version {version!r}")
        return found

    async def document(self, name: str, version: str) -> str:
        """A version's canonical document text."""
        text = await self.store.get_document(name, version)
        if text is None:
            await self.version(name, version)
        return text or ""

    async def versions(self, name: str) -> list[Version]:
        """Every version of a contract, oldest first."""
        await self.contract(name)
        return await self.store.list_versions(name)

    async def publish(self, name: str, version: str, *, actor: str) -> Version:
        """Publish a version (idempotent) and tell the listeners."""
        current = await self.version(name, version)
        if current.state == "published":
            return current
        # a draft exists only where review is off (or for the bundled catalog): with review on, proposals
        # are in_review until the board approves them
        allowed = list(PUBLISHABLE_FROM)
        if current.state not in allowed:
            hint = " (the change request needs its approvals first)" if current.state == "in_review" else ""
            raise Conflict(f"{name}@{version} is {current.state}{hint}; publishing is allowed from: {allowed}")
        missing = await self.can_i_publish(name, version)
        if missing:
            raise Conflict(f"{name}@{version} needs a passing verification against {', '.join(missing)} "
                           "before it is published (govgate verify --record)")
        updated = await self.store.set_state(name, version, "published", expected=current.state, audit=AuditEntry(
            actor=actor, action="version.published", target=f"{name}@{version}", before=current.state,
            after="published"))
        if updated is None:
            raise Conflict(f"{name}@{version} changed state meanwhile; read it again")
        await self._changed()
        return updated

    async def deprecate(self, name: str, version: str, deprecation: Deprecation, *, actor: str) -> Version:
        """Deprecate a published version with a sunset date (at least min_sunset_days ahead) and a successor."""
        current = await self.version(name, version)
        if current.state != "published":
            raise Conflict(f"{name}@{version} is {current.state}; only a published version can be deprecated")
        earliest = datetime.now(UTC).date() + timedelta(days=self.min_sunset_days)
        if deprecation.sunset < earliest:
            raise InvalidRequest(f"the sunset must be on or after {earliest} ({self.min_sunset_days} days ahead)")
        if deprecation.successor is not None:
            successor = await self.version(name, deprecation.successor)
            if successor.state != "published" or SemVer.parse(successor.version) <= SemVer.parse(version):
                raise InvalidRequest(f"the successor must be a newer published version of {name}")
        updated = await self.store.set_state(name, version, "deprecated", expected="published",
                                             sunset=deprecation.sunset, successor=deprecation.successor,
                                             audit=AuditEntry(actor=actor, action="version.deprecated",
                                                              target=f"{name}@{version}", before="published",
                                                              after=msgspec.to_builtins(deprecation)))
        if updated is None:
            raise Conflict(f"{name}@{version} changed state meanwhile; read it again")
        await self._changed()
        return updated

    async def retire(self, name: str, version: str, retirement: Retirement, *, actor: str, admin: bool) -> Version:
        """Retire a deprecated version: after its sunset, or before it when an admin forces it with a reason."""
        current = await self.version(name, version)
        if current.state != "deprecated":
            raise Conflict(f"{name}@{version} is {current.state}; only a deprecated version can be retired")
        if current.sunset and datetime.now(UTC).date() < current.sunset:
            if not (retirement.force and admin):
                raise Conflict(f"{name}@{version} sunsets on {current.sunset}; an admin may force it with a reason")
            if not retirement.reason.strip():
                raise InvalidRequest("forcing a retirement before the sunset needs a reason")
        updated = await self.store.set_state(name, version, "retired", expected="deprecated", audit=AuditEntry(
            actor=actor, action="version.retired", target=f"{name}@{version}", before="deprecated", after="retired",
            reason=retirement.reason))
        if updated is None:
            raise Conflict(f"{name}@{version} changed state meanwhile; read it again")
        await self._changed()
        return updated

    async def record_verification(self, name: str, version: str, new: NewVerification, *, actor: str) -> Verification:
        """Store what `govgate verify` found for a version against an environment."""
        await self.version(name, version)
        return await self.store.record_verification(name, version, new, actor=actor, audit=AuditEntry(
            actor=actor, action="version.verified", target=f"{name}@{version}",
            after={"environment": new.environment, "passed": new.passed, "base_url": new.base_url}))

    async def can_i_publish(self, name: str, version: str) -> list[str]:
        """The environments the publish policy requires whose latest verification did not pass (empty: go)."""
        latest: dict[str, bool] = {}
        for verification in await self.store.list_verifications(name, version):  # newest first
            latest.setdefault(verification.environment, verification.passed)
        return [env for env in self.publish_requires_verification if not latest.get(env, False)]

    async def put_plan(self, plan: Plan, *, actor: str = "system") -> Plan:
        """Create or replace a plan."""
        await self.store.put_plan(plan, audit=AuditEntry(actor=actor, action="plan.saved", target=f"plan/{plan.name}",
                                                         after=msgspec.to_builtins(plan)))
        await self._changed()
        return plan

    async def create_consumer(self, new: NewConsumer, *, actor: str) -> tuple[Consumer, str]:
        """Register a consumer; its client secret is returned once and stored hashed."""
        if new.plan not in {p.name for p in await self.store.list_plans()}:
            raise InvalidRequest(f"no plan named {new.plan!r}: create it first")
        secret = tokens.new_secret("gg_secret_")
        consumer, created = await self.store.create_consumer(new, tokens.hash_secret(secret), actor=actor, audit=AuditEntry(
            actor=actor, action="consumer.created", target=f"consumer/{new.id}", after=msgspec.to_builtins(new)))
        if not created:
            raise Conflict(f"consumer {new.id!r} exists")
        await self._changed()
        return consumer, secret

    async def consumer(self, consumer_id: str) -> Consumer:
        """One consumer or NotFound."""
        consumer = await self.store.get_consumer(consumer_id)
        if consumer is None:
            raise NotFound(f"no consumer {consumer_id!r}")
        return consumer

    async def issue_api_key(self, consumer_id: str, *, actor: str = "system") -> str:
        """A new API key for a consumer, returned once and stored hashed."""
        await self.consumer(consumer_id)
        key = tokens.new_secret("gg_key_")
        digest = tokens.hash_api_key(key)
        await self.store.add_api_key(consumer_id, digest, audit=AuditEntry(
            actor=actor, action="consumer.api-key-issued", target=f"consumer/{consumer_id}",
            after={"key_sha256_prefix": digest[:8]}))
        await self._changed()
        return key

    async def subscribe(self, consumer_id: str, subscription: Subscription, *, subscribed: bool = True,
                        actor: str = "system") -> Consumer:
        """Let a consumer call a contract major (or stop it)."""
        await self.consumer(consumer_id)
        await self.contract(subscription.contract)
        await self.store.set_subscription(
            consumer_id, subscription.contract, subscription.major, subscribed=subscribed, audit=AuditEntry(
                actor=actor, action="consumer.subscribed" if subscribed else "consumer.unsubscribed",
                target=f"consumer/{consumer_id}", after=msgspec.to_builtins(subscription)))
        await self._changed()
        return await self.consumer(consumer_id)



def _next(base: str | None, report: Report, taken: list[str]) -> str:
    """The version to suggest: the required bump of `base`, past every version already taken (2.0.0 exists: 3.0.0)."""
    current = SemVer.parse(base or "0.0.0")
    parsed = [SemVer.parse(v) for v in taken if _SEMVER_TEXT.match(v)]
    bump = report.semver["required_bump"]
    if bump == "major":
        return f"{max([current.major, *(v.major for v in parsed)]) + 1}.0.0"
    same_major = [v for v in parsed if v.major == current.major]
    if bump == "minor":
        return f"{current.major}.{max([current.minor, *(v.minor for v in same_major)]) + 1}.0"
    same_minor = [v.patch for v in same_major if v.minor == current.minor]
    return f"{current.major}.{current.minor}.{max([current.patch, *same_minor]) + 1}"


_SEMVER_TEXT = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")


def _definition(contract: Contract | NewContract) -> tuple[Any, ...]:
    return contract.kind, contract.owner, contract.description, contract.upstream, contract.compatibility


def _version_of(contract: Contract, document: dict[str, Any], version: str | None) -> str:
    info = document.get("info")
    declared = info.get("version") if contract.kind == "openapi" and isinstance(info, dict) else None
    if version is None and declared is None:
        raise InvalidRequest("say which version this is: ?version=MAJOR.MINOR.PATCH")
    if version is not None and declared is not None and str(declared) != version:
        raise InvalidRequest(f"version {version!r} does not match the document's info.version {declared!r}")
    return version if version is not None else str(declared)
