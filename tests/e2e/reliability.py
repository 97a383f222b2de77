"""Rows for docs/reliability.md, collected by the bad-input and fault tests as they assert."""

from __future__ import annotations


class Reliability:
    """What was tried, what the caller saw, what was lost."""

    rows: list[tuple[str, str, str, str]] = []

    @classmethod
    def record(cls, area: str, tried: str, seen: str, lost: str = "nothing") -> None:
        cls.rows.append((area, tried, seen, lost))
