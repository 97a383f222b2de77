"""Security requirements of operations: what a client that works today must now also present.

A requirement is a list of alternatives; each alternative names schemes with scopes, all
of which must be met. A client that satisfied old alternative A keeps working when some
new alternative B asks for no scheme outside A and, per scheme, no scope outside A's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff

RULES = [
    Rule("security-requirement-added", "ERR", "request", "security now requires {schemes}"),
    Rule("security-scope-added", "ERR", "request", "security now requires the scopes {scopes}"),
    Rule("security-requirement-relaxed", "INFO", "request", "security requirements relaxed"),
]

Alternative = dict[str, frozenset[str]]


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.operations:
        old = _alternatives(pair.old.get("security", diff.old.root.get("security")))
        new = _alternatives(pair.new.get("security", diff.new.root.get("security")))
        if old == new:
            continue
        for alternative in old:
            if any(_satisfied_by(alternative, candidate) for candidate in new):
                continue
            same_schemes = [c for c in new if set(c) <= set(alternative)]
            if same_schemes:
                extra = sorted({s for c in same_schemes for name in c for s in c[name] - alternative[name]})
                yield Finding("security-scope-added", pair.key, "security", {"scopes": ", ".join(extra)})
            else:
                needed = sorted({name for c in new for name in c} - set(alternative)) or ["(none)"]
                yield Finding("security-requirement-added", pair.key, "security", {"schemes": ", ".join(needed)})
        for alternative in new:
            if not any(_satisfied_by(a, alternative) for a in old):
                continue
            if not any(a == alternative for a in old):
                yield Finding("security-requirement-relaxed", pair.key, "security")
                break


def _alternatives(requirement: Any) -> list[Alternative]:
    if not isinstance(requirement, list) or not requirement:
        return [{}]  # no requirement: anonymous calls are fine
    return [{name: frozenset(scopes or []) for name, scopes in alt.items()} for alt in requirement
            if isinstance(alt, dict)]


def _satisfied_by(client: Alternative, required: Alternative) -> bool:
    """A client holding `client` meets `required`."""
    return all(name in client and scopes <= client[name] for name, scopes in required.items())
