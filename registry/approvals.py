"""The approval policy: how many approvals a change request needs, from a YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec

from registry import documents

Approvals = Annotated[int, msgspec.Meta(ge=0, le=20)]
LevelName = Literal["ERR", "WARN", "INFO", "none"]


class ApprovalPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Approvals needed per most severe finding; levels approved automatically."""

    by_level: dict[LevelName, Approvals] = msgspec.field(
        default_factory=lambda: {"ERR": 2, "WARN": 1, "INFO": 1, "none": 1})
    first_version: Approvals = 1
    auto_approve: list[LevelName] = []

    def required(self, worst: str | None) -> int:
        """Approvals a change needs; worst is ERR / WARN / INFO, "none", or None for a first version."""
        if worst is None:
            return self.first_version
        if worst in self.auto_approve:
            return 0
        return self.by_level.get(worst, 1)  # type: ignore[call-overload]


def load_policy(path: Path | None) -> ApprovalPolicy:
    """The policy in a YAML file, or the defaults."""
    if path is None:
        return ApprovalPolicy()
    try:
        return msgspec.convert(documents.parse(path.read_bytes(), source=str(path)), ApprovalPolicy)
    except msgspec.ValidationError as exc:
        raise ValueError(f"approval policy {path} is invalid: {exc}") from None
