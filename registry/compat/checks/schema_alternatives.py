"""oneOf / anyOf alternatives and allOf members added or removed."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import declared, per_context, schema_finding
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff

ONE_OF_ALTERNATIVE_ADDED = per_context("oneOf alternative {which} added", {
    "request-body-one-of-alternative-added": "INFO", "request-parameter-one-of-alternative-added": "INFO",
    "response-body-one-of-alternative-added": "ERR", "event-one-of-alternative-added": ("INFO", "ERR")})
ONE_OF_ALTERNATIVE_REMOVED = per_context("oneOf alternative {which} removed", {
    "request-body-one-of-alternative-removed": "ERR", "request-parameter-one-of-alternative-removed": "ERR",
    "response-body-one-of-alternative-removed": "INFO", "event-one-of-alternative-removed": ("ERR", "INFO")})
ANY_OF_ALTERNATIVE_ADDED = per_context("anyOf alternative {which} added", {
    "request-body-any-of-alternative-added": "INFO", "request-parameter-any-of-alternative-added": "INFO",
    "response-body-any-of-alternative-added": "ERR", "event-any-of-alternative-added": ("INFO", "ERR")})
ANY_OF_ALTERNATIVE_REMOVED = per_context("anyOf alternative {which} removed", {
    "request-body-any-of-alternative-removed": "ERR", "request-parameter-any-of-alternative-removed": "ERR",
    "response-body-any-of-alternative-removed": "INFO", "event-any-of-alternative-removed": ("ERR", "INFO")})
ALL_OF_MEMBER_ADDED = per_context("allOf member {which} added", {
    "request-body-all-of-member-added": "ERR", "request-parameter-all-of-member-added": "ERR",
    "response-body-all-of-member-added": "INFO", "event-all-of-member-added": ("ERR", "INFO")})
ALL_OF_MEMBER_REMOVED = per_context("allOf member {which} removed", {
    "request-body-all-of-member-removed": "INFO", "request-parameter-all-of-member-removed": "INFO",
    "response-body-all-of-member-removed": "WARN", "event-all-of-member-removed": ("INFO", "WARN")})
RULES = declared(ONE_OF_ALTERNATIVE_ADDED, ONE_OF_ALTERNATIVE_REMOVED, ANY_OF_ALTERNATIVE_ADDED,
                 ANY_OF_ALTERNATIVE_REMOVED, ALL_OF_MEMBER_ADDED, ALL_OF_MEMBER_REMOVED)

# combinator -> (its change when alternatives are removed, when they are added)
_CHANGES = {"oneOf": (ONE_OF_ALTERNATIVE_REMOVED, ONE_OF_ALTERNATIVE_ADDED),
            "anyOf": (ANY_OF_ALTERNATIVE_REMOVED, ANY_OF_ALTERNATIVE_ADDED),
            "allOf": (ALL_OF_MEMBER_REMOVED, ALL_OF_MEMBER_ADDED)}


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        for combinator, (removed, added) in pair.alternatives.items():
            fewer, more = _CHANGES[combinator]
            if removed:
                yield from schema_finding(pair, fewer, combinator=combinator,
                                          which=", ".join(f"#{i}" for i in removed))
            if added:
                yield from schema_finding(pair, more, combinator=combinator,
                                          which=", ".join(f"#{j}" for j in added))
