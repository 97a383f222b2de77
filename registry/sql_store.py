"""The registry store in SQL: contracts, their versions and the change requests that propose them.

The rules of the review (opening state, tally, closing on publish) are `registry/workflow.py`'s;
here they are persisted with compare-and-sets. A dialect subclasses `SQLStore`: see
`registry/sql_base.py` for what it provides and how each dialect locks.
"""

from __future__ import annotations

import json
from datetime import date

import msgspec

from registry import sql_rows as rows
from registry import workflow
from registry.audit import AuditEntry, always, when_created, when_present, when_vote_recorded
from registry.model import (
    ChangeRequest,
    Contract,
    NewChange,
    NewContract,
    NewVerification,
    NewVersion,
    Verification,
    Version,
    Vote,
)
from registry.sql_base import Db, filters, json_text, now, the_row
from registry.sql_consumers import SQLConsumers

Audit = AuditEntry | None
_CONTRACT = rows.CONTRACT_COLUMNS
_VERSION = rows.VERSION_COLUMNS
_SELECT_VERSION = f"SELECT {_VERSION} FROM versions WHERE contract = ? AND version = ?"


class SQLStore(SQLConsumers):
    """Every query of the registry; subclasses bring the dialect."""

    async def create_contract(self, new: NewContract, *, actor: str, audit: Audit = None) -> tuple[Contract, bool]:
        """Insert a contract; (existing, False) when one by that name exists."""
        async def tx(db: Db) -> tuple[Contract, bool]:
            row = await db.one(f"INSERT INTO contracts ({_CONTRACT}) VALUES ({rows.placeholders(_CONTRACT)})"
                               f" ON CONFLICT (name) DO NOTHING RETURNING {_CONTRACT}",
                               (new.name, new.kind, new.owner, new.description, new.upstream, now(), actor,
                                new.compatibility))
            if row:
                return rows.contract(row), True
            existing = await the_row(db, f"SELECT {_CONTRACT} FROM contracts WHERE name = ?", (new.name,))
            return rows.contract(existing), False

        return await self._transaction(tx, when_created(audit))

    async def get_contract(self, name: str) -> Contract | None:
        """One contract by name."""
        row = await self._fetchone(f"SELECT {_CONTRACT} FROM contracts WHERE name = ?", (name,))
        return rows.contract(row) if row else None

    async def list_contracts(self) -> list[Contract]:
        """Every contract, by name."""
        return [rows.contract(r) for r in await self._fetchall(f"SELECT {_CONTRACT} FROM contracts ORDER BY name")]

    async def add_version(self, new: NewVersion, *, actor: str, state: str = "draft", change: NewChange | None = None,
                          audit: Audit = None) -> tuple[Version, bool]:
        """Insert a version (with the change request proposing it); (existing, False) when the number is taken."""
        key = (new.contract, new.version)

        async def tx(db: Db) -> tuple[Version, bool]:
            if row := await db.one(_SELECT_VERSION, key):
                return rows.version(row), False
            at = now()
            # two proposers of one version at once: the second waits for the first, then inserts nothing
            row = await db.one(f"INSERT INTO versions ({_VERSION}, document, changes) VALUES"
                               " (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, NULL, NULL, NULL, ?, ?)"
                               f" ON CONFLICT (contract, version) DO NOTHING RETURNING {_VERSION}",
                               (*key, new.major, new.sha256, state, at, actor, new.base_version, new.required_bump,
                                new.document, new.changes))
            if row is None:
                return rows.version(await the_row(db, _SELECT_VERSION, key)), False
            if change is not None:
                await db.execute(
                    f"INSERT INTO change_requests ({rows.CHANGE_COLUMNS}) VALUES"
                    f" ({rows.placeholders(rows.CHANGE_COLUMNS)})",
                    (change.id, *key, new.base_version, workflow.opening_state(change.required_approvals),
                     change.proposer, change.proposer_team, change.required_approvals, change.required_bump,
                     json.dumps(change.findings), json_text(change.changes) if change.changes else None,
                     json_text(change.lint) if change.lint else None,
                     msgspec.json.encode(change.affected_consumers).decode(), at, at, 1))
            return rows.version(row), True

        return await self._transaction(tx, when_created(audit))

    async def get_changes(self, contract: str, version: str) -> str | None:
        """The compatibility report stored with a version, as JSON."""
        row = await self._fetchone("SELECT changes FROM versions WHERE contract = ? AND version = ?",
                                   (contract, version))
        return row[0] if row else None

    async def get_version(self, contract: str, version: str) -> Version | None:
        """One version's metadata."""
        row = await self._fetchone(_SELECT_VERSION, (contract, version))
        return rows.version(row) if row else None

    async def get_document(self, contract: str, version: str) -> str | None:
        """One version's canonical document text."""
        row = await self._fetchone("SELECT document FROM versions WHERE contract = ? AND version = ?",
                                   (contract, version))
        return row[0] if row else None

    async def list_versions(self, contract: str) -> list[Version]:
        """Every version of a contract, oldest first."""
        query = f"SELECT {_VERSION} FROM versions WHERE contract = ? ORDER BY created_at, {self.insertion_order}"
        return [rows.version(r) for r in await self._fetchall(query, (contract,))]

    async def set_state(self, contract: str, version: str, state: str, *, expected: str,
                        sunset: date | None = None, successor: str | None = None, audit: Audit = None
                        ) -> Version | None:
        """Move a version to `state` only if it is in `expected`; None when it was not."""
        key = (contract, version)
        closes_change = state == "published"

        async def tx(db: Db) -> Version | None:
            if closes_change and self.for_update:  # lock the change request first, as votes do
                await db.execute(f"SELECT 1 FROM change_requests WHERE contract = ? AND version = ?{self.for_update}",
                                 key)
            at = now()
            # compare and set: of two concurrent moves from `expected`, the second matches no row
            row = await db.one(
                "UPDATE versions SET state = ?, published_at = COALESCE(?, published_at),"
                " deprecated_at = COALESCE(?, deprecated_at), sunset = COALESCE(?, sunset),"
                " successor = COALESCE(?, successor) WHERE contract = ? AND version = ? AND state = ?"
                f" RETURNING {_VERSION}",
                (state, at if state == "published" else None, at if state == "deprecated" else None, sunset,
                 successor, *key, expected))
            if row is None:
                return None
            if closes_change:
                before, after = workflow.CLOSED_BY_PUBLISH
                await db.execute("UPDATE change_requests SET state = ?, updated_at = ?, row_version = row_version + 1"
                                 " WHERE contract = ? AND version = ? AND state = ?", (after, at, *key, before))
            return rows.version(row)

        return await self._transaction(tx, when_present(audit))

    async def list_published(self) -> list[tuple[Contract, Version, str]]:
        """Every published (or deprecated, retired) version with its contract and document."""
        columns = ", ".join(f"c.{c}" for c in _CONTRACT.split(", "))
        columns += ", " + ", ".join(f"v.{c}" for c in _VERSION.split(", ")) + ", v.document"
        found = await self._fetchall(
            f"SELECT {columns} FROM versions v JOIN contracts c ON c.name = v.contract"
            " WHERE v.state IN ('published', 'deprecated', 'retired') ORDER BY c.name, v.major, v.created_at")
        return [(rows.contract(r[:8]), rows.version(r[8:21]), r[21]) for r in found]

    async def get_change(self, change_id: str) -> ChangeRequest | None:
        """One change request with its votes."""
        return await self._read(lambda db: self._change(db, change_id))

    async def change_for(self, contract: str, version: str) -> ChangeRequest | None:
        """The change request that proposed a version."""
        async def read(db: Db) -> ChangeRequest | None:
            row = await db.one("SELECT id FROM change_requests WHERE contract = ? AND version = ?", (contract, version))
            return await self._change(db, row[0]) if row else None

        return await self._read(read)

    async def list_changes(self, *, contract: str | None = None, state: str | None = None) -> list[ChangeRequest]:
        """Change requests, newest first, filtered by contract or state."""
        where, params = filters(contract=contract, state=state)

        async def read(db: Db) -> list[ChangeRequest]:
            ids = await db.all(f"SELECT id FROM change_requests WHERE {where} ORDER BY created_at DESC", params)
            return [c for (cid,) in ids if (c := await self._change(db, cid)) is not None]

        return await self._read(read)

    async def vote(self, change_id: str, vote: Vote, *, expected_row_version: int | None = None,
                   audit: Audit = None) -> tuple[ChangeRequest | None, str]:
        """Count a vote; (request, "recorded"), or the reason it was not: missing, stale, closed, duplicate."""
        async def tx(db: Db) -> tuple[ChangeRequest | None, str]:
            # the row lock makes concurrent votes take turns: each counts the votes committed before it
            current = await self._change(db, change_id, lock=True)
            if current is None:
                return None, "missing"
            if refusal := workflow.refuse_vote(current, vote.voter, expected_row_version):
                return current, refusal
            await db.execute("INSERT INTO votes (change_id, voter, decision, comment, at) VALUES (?, ?, ?, ?, ?)",
                             (change_id, vote.voter, vote.decision, vote.comment, vote.at))
            state = workflow.tally([*current.votes, vote], current.required_approvals)
            await db.execute("UPDATE change_requests SET state = ?, updated_at = ?, row_version = row_version + 1"
                             " WHERE id = ?", (state, now(), change_id))
            if workflow.decided(state):
                await db.execute("UPDATE versions SET state = ? WHERE contract = ? AND version = ?"
                                 " AND state = 'in_review'", (state, current.contract, current.version))
            return await self._change(db, change_id), "recorded"

        return await self._transaction(tx, when_vote_recorded(audit))

    async def close_change(self, change_id: str, state: str, *, expected: str, version_state: str,
                           audit: Audit = None) -> ChangeRequest | None:
        """Move an `expected` change request to `state` and its version to `version_state`; None if it was not."""
        async def tx(db: Db) -> ChangeRequest | None:
            current = await self._change(db, change_id, lock=True)
            if current is None or current.state != expected:
                return None
            await db.execute("UPDATE change_requests SET state = ?, updated_at = ?, row_version = row_version + 1"
                             " WHERE id = ?", (state, now(), change_id))
            await db.execute("UPDATE versions SET state = ? WHERE contract = ? AND version = ?",
                             (version_state, current.contract, current.version))
            return await self._change(db, change_id)

        return await self._transaction(tx, when_present(audit))

    async def _change(self, db: Db, change_id: str, *, lock: bool = False) -> ChangeRequest | None:
        row = await db.one(f"SELECT {rows.CHANGE_COLUMNS} FROM change_requests WHERE id = ?"
                           + (self.for_update if lock else ""), (change_id,))
        if row is None:
            return None
        votes = await db.all(f"SELECT {rows.VOTE_COLUMNS} FROM votes WHERE change_id = ? ORDER BY at, voter",
                             (change_id,))
        return rows.change(row, votes)

    async def record_verification(self, contract: str, version: str, new: NewVerification, *, actor: str,
                                  audit: Audit = None) -> Verification:
        """Store the outcome of a provider verification."""
        at = now()

        async def tx(db: Db) -> Verification:
            await db.execute("INSERT INTO verifications (contract, version, environment, passed, base_url, summary,"
                             " report, recorded_at, recorded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (contract, version, new.environment, new.passed, new.base_url, new.summary,
                              json_text(new.report) if new.report is not None else None, at, actor))
            return Verification(contract=contract, version=version, environment=new.environment, passed=new.passed,
                                base_url=new.base_url, summary=new.summary, recorded_at=at, recorded_by=actor)

        return await self._transaction(tx, always(audit))

    async def list_verifications(self, contract: str, version: str) -> list[Verification]:
        """A version's verifications, newest first."""
        found = await self._fetchall(f"SELECT {rows.VERIFICATION_COLUMNS} FROM verifications"
                                     " WHERE contract = ? AND version = ? ORDER BY id DESC", (contract, version))
        return [rows.verification(r) for r in found]
