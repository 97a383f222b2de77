"""Whether one `pattern` admits strings another refuses, decided by evidence.

Strings that match a pattern are generated with hypothesis (`from_regex`, derandomized, so a
verdict never changes between runs) and tested against the other pattern. JSON Schema patterns
are unanchored ECMA-262 regexes; they are read here with Python's `re` in ASCII mode (ECMA's
`\d` and `\w` are ASCII), which agrees on the syntax real specs use; a pattern Python cannot read
gets no verdict (None). Samples ending in a newline are dropped: Python's `$` matches before one,
ECMA's does not. Sampling stops at the first counterexample; two patterns that agree cost ~0.1-0.8 s (200
samples each way, longer for long strings), so a diff judges at most BUDGET distinct pairs.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

SAMPLES = 200
"""Strings generated per pattern: enough to find the difference between real specs' patterns."""
BUDGET = 6
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
        return Evidence(counterexample(old_re, new_re), counterexample(new_re, old_re))
    except Exception:  # noqa: BLE001 - an unreadable or ungeneratable regex is "no verdict", never a crash
        return None


class _Found(Exception):
    def __init__(self, value: str) -> None:
        self.value = value


def counterexample(pattern: re.Pattern[str], other: re.Pattern[str]) -> str | None:
    """A string `pattern` matches (search semantics, as JSON Schema's) and `other` does not, among SAMPLES tried."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=SAMPLES, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False, verbosity=Verbosity.quiet)
    @given(st.from_regex(pattern))
    def probe(value: Any) -> None:
        # keep what really matches, in ECMA's terms too; the first string the other refuses ends the search
        if pattern.search(value) and not value.endswith("\n") and not other.search(value):
            raise _Found(value)

    try:
        probe()
    except _Found as found:
        return found.value
    return None
