"""The review workflow: version and change-request states, the moves between them, the vote tally.

Pure rules, no I/O: the stores persist what these functions decide and compare-and-set on it.

    version          draft ──────────────┐
                     in_review ─ approved ┴─ published ─ deprecated ─ retired
                               ├ rejected
                               └ withdrawn
    change request   open ─ approved ─ published      (closes when its version is published)
                          ├ rejected                   (one reject vote closes it)
                          └ withdrawn                  (the proposer or an admin takes it back)

A change request that needs no approval is approved when it opens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from registry.model import ChangeRequest, ChangeState, Vote

# what `publish` may move a version from: a draft (review off, or the bundled catalog) or an approved proposal
PUBLISHABLE_FROM = ("draft", "approved")
# a published version's change request moves with it
CLOSED_BY_PUBLISH: tuple[ChangeState, ChangeState] = ("approved", "published")

VoteRefusal = Literal["stale", "closed", "duplicate"]


def opening_state(required_approvals: int) -> ChangeState:
    """The state a new change request starts in: approved at once when it needs no approval."""
    return "approved" if required_approvals == 0 else "open"


def tally(votes: Sequence[Vote], required: int) -> ChangeState:
    """The state the votes decide: one reject rejects, `required` approvals approve, else still open."""
    if any(v.decision == "reject" for v in votes):
        return "rejected"
    return "approved" if sum(1 for v in votes if v.decision == "approve") >= required else "open"


def refuse_vote(change: ChangeRequest, voter: str, expected_row_version: int | None) -> VoteRefusal | None:
    """Why a vote cannot be counted (the request moved on, is closed, or has this voter's vote), or None."""
    if expected_row_version is not None and change.row_version != expected_row_version:
        return "stale"
    if change.state != "open":
        return "closed"
    if any(v.voter == voter for v in change.votes):
        return "duplicate"
    return None


def decided(state: ChangeState) -> bool:
    """Whether the tally closed the request: its in_review version then takes the same state."""
    return state != "open"
