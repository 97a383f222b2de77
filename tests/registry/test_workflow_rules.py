"""The review workflow's rules, without a store: how votes decide, when a request takes no vote."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from registry import workflow
from registry.model import ChangeRequest, ChangeState, Vote

AT = datetime(2026, 12, 1, tzinfo=UTC)


def vote(voter: str, decision: Literal["approve", "reject"] = "approve") -> Vote:
    return Vote(voter=voter, decision=decision, comment="", at=AT)


def change(state: ChangeState = "open", votes: list[Vote] | None = None, row_version: int = 1) -> ChangeRequest:
    return ChangeRequest(id="c1", contract="erp.sales-orders", version="2.0.0", base_version="1.0.0", state=state,
                         proposer="ian", proposer_team="team-erp", required_approvals=2, required_bump="major",
                         findings={"ERR": 1}, changes=None, lint=None, affected_consumers=[], votes=votes or [],
                         created_at=AT, updated_at=AT, row_version=row_version)


def test_a_request_that_needs_no_approval_is_approved_when_it_opens() -> None:
    assert workflow.opening_state(0) == "approved"
    assert workflow.opening_state(1) == "open"


def test_a_request_stays_open_until_it_has_the_approvals_it_needs() -> None:
    assert workflow.tally([vote("board-1")], required=2) == "open"
    assert workflow.tally([vote("board-1"), vote("board-2")], required=2) == "approved"
    assert workflow.tally([vote("board-1"), vote("board-2"), vote("board-3")], required=2) == "approved"


def test_one_reject_rejects_whatever_the_approvals() -> None:
    assert workflow.tally([vote("board-1", "reject")], required=1) == "rejected"
    assert workflow.tally([vote("board-1"), vote("board-2", "reject")], required=2) == "rejected"


def test_a_decided_request_moves_its_version_an_open_one_does_not() -> None:
    assert workflow.decided("approved") and workflow.decided("rejected")
    assert not workflow.decided("open")


def test_a_vote_on_an_open_request_is_counted() -> None:
    assert workflow.refuse_vote(change(), "board-1", expected_row_version=None) is None
    assert workflow.refuse_vote(change(row_version=3), "board-1", expected_row_version=3) is None


def test_a_voter_votes_once() -> None:
    assert workflow.refuse_vote(change(votes=[vote("board-1")]), "board-1", None) == "duplicate"
    assert workflow.refuse_vote(change(votes=[vote("board-1")]), "board-2", None) is None


def test_a_closed_request_takes_no_vote() -> None:
    closed: tuple[ChangeState, ...] = ("approved", "rejected", "withdrawn", "published")
    for state in closed:
        assert workflow.refuse_vote(change(state=state), "board-1", None) == "closed"


def test_a_vote_cast_on_an_older_reading_is_refused_before_anything_else() -> None:
    closed_and_moved_on = change(state="approved", votes=[vote("board-1")], row_version=3)
    assert workflow.refuse_vote(closed_and_moved_on, "board-1", expected_row_version=2) == "stale"


def test_publishing_closes_an_approved_request_and_is_allowed_from_draft_or_approved() -> None:
    assert workflow.CLOSED_BY_PUBLISH == ("approved", "published")
    assert set(workflow.PUBLISHABLE_FROM) == {"draft", "approved"}
