"""Whether one `pattern` admits strings another refuses, decided by evidence.

Strings that match a pattern are generated with hypothesis (`from_regex`, derandomized, so a
verdict never changes between runs) and tested against the other pattern. JSON Schema patterns
are unanchored ECMA-262 regexes; they are read here with Python's `re` in ASCII mode (ECMA's
`\d` and `\w` are ASCII), which agrees on the syntax real specs use; a pattern Python cannot read
gets no verdict (None). Samples ending in a newline are dropped: Python's `$` matches before one,
ECMA's does not. Sampling costs ~0.2-0.5 s a pair, so a diff judges at most BUDGET distinct pairs.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

SAMPLES = 120
"""Strings generated per pattern: enough to find the difference between real specs' patterns."""
BUDGET = 12
"""Distinct pattern pairs one diff judges by evidence; beyond it a change gets no verdict."""


class Evidence(NamedTuple):
    """What sampling showed: a string of the old pattern the new one refuses, and the reverse (None: none found)."""

    lost: str | None
    gained: str | None


@lru_cache(maxsize=1024)
def compare(old: str, new: str) -> Evidence | None:
    """Sample each pattern and test the samples against the other; None when either cannot be read."""
    try:
        old_re, new_re = re.compile(old, re.ASCII), re.compile(new, re.ASCII)
        lost = next((s for s in samples(old_re) if not new_re.search(s)), None)
        gained = next((s for s in samples(new_re) if not old_re.search(s)), None)
    except Exception:  # noqa: BLE001 - an unreadable or ungeneratable regex is "no verdict", never a crash
        return None
    return Evidence(lost, gained)


def samples(pattern: re.Pattern[str]) -> list[str]:
    """Up to SAMPLES distinct strings that `pattern` matches (search semantics, as JSON Schema's)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    found: dict[str, None] = {}

    @settings(max_examples=SAMPLES, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(st.from_regex(pattern))
    def collect(value: Any) -> None:
        if pattern.search(value) and not value.endswith("\n"):  # keep what really matches, in ECMA's terms too
            found[value] = None

    collect()
    return list(found)
