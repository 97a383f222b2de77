"""A pattern or multipleOf constraint added, removed or changed; uniqueItems toggled.

A changed pattern is judged by evidence (registry.compat.patterns): strings generated from the old
pattern that the new one refuses make it narrowed, strings of the new one the old refused make it
widened, neither makes the two equivalent. Only a pattern Python cannot read (or one past the
diff's sampling budget) stays an undecided `pattern-changed`.
"""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat import patterns
from registry.compat.checks import declared, per_context, schema_finding, show
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff, SchemaPair

PATTERN_ADDED = per_context("pattern {new} added", {
    "request-body-pattern-added": "ERR", "request-parameter-pattern-added": "ERR",
    "response-body-pattern-added": "INFO", "event-pattern-added": ("ERR", "INFO")})
PATTERN_REMOVED = per_context("pattern {old} removed", {
    "request-body-pattern-removed": "INFO", "request-parameter-pattern-removed": "INFO",
    "response-body-pattern-removed": "WARN", "event-pattern-removed": ("INFO", "WARN")})
PATTERN_CHANGED = per_context("pattern changed from {old} to {new} (not judged: {why})", {
    "request-body-pattern-changed": "WARN", "request-parameter-pattern-changed": "WARN",
    "response-body-pattern-changed": "WARN", "event-pattern-changed": ("WARN", "WARN")},
    why="No verdict: a regex Python cannot read (such as ECMA's `\\p{L}`) cannot be sampled, and one diff "
        f"samples at most {patterns.BUDGET} distinct pattern pairs. It may narrow or widen: WARN.")
PATTERN_NARROWED = per_context("pattern {old} narrowed to {new}: {example} no longer matches", {
    "request-body-pattern-narrowed": "ERR", "request-parameter-pattern-narrowed": "ERR",
    "response-body-pattern-narrowed": "INFO", "event-pattern-narrowed": ("ERR", "INFO")},
    why="Sampling found a string the old pattern accepted and the new one refuses: a request that was valid "
        "is now refused (ERR, like a pattern added).")
PATTERN_WIDENED = per_context("pattern {old} widened to {new}: {example} now matches", {
    "request-body-pattern-widened": "INFO", "request-parameter-pattern-widened": "INFO",
    "response-body-pattern-widened": "WARN", "event-pattern-widened": ("INFO", "ERR")},
    why="A response value may now take a form a client's parser did not expect: WARN, no worse than removing "
        "the pattern. FORWARD event readers on the old schema refuse such data: ERR.")
PATTERN_EQUIVALENT = per_context("pattern {old} rewritten as {new}; samples of each match the other", {
    "request-body-pattern-equivalent": "INFO", "request-parameter-pattern-equivalent": "INFO",
    "response-body-pattern-equivalent": "INFO", "event-pattern-equivalent": ("INFO", "INFO")},
    why="Samples of each pattern all match the other: evidence, not proof, that the rewrite admits the same "
        "strings (`[0-9]` and `\\d` in ASCII, as ECMA reads `\\d`).")
MULTIPLE_OF_ADDED = per_context("multipleOf {new} added", {
    "request-body-multiple-of-added": "ERR", "request-parameter-multiple-of-added": "ERR",
    "response-body-multiple-of-added": "INFO", "event-multiple-of-added": ("ERR", "INFO")})
MULTIPLE_OF_REMOVED = per_context("multipleOf {old} removed", {
    "request-body-multiple-of-removed": "INFO", "request-parameter-multiple-of-removed": "INFO",
    "response-body-multiple-of-removed": "WARN", "event-multiple-of-removed": ("INFO", "WARN")})
MULTIPLE_OF_CHANGED = per_context("multipleOf changed from {old} to {new}", {
    "request-body-multiple-of-changed": "WARN", "request-parameter-multiple-of-changed": "WARN",
    "response-body-multiple-of-changed": "WARN", "event-multiple-of-changed": ("WARN", "WARN")})
UNIQUE_ITEMS_ADDED = per_context("items must now be unique", {
    "request-body-unique-items-added": "ERR", "request-parameter-unique-items-added": "ERR",
    "response-body-unique-items-added": "INFO", "event-unique-items-added": ("ERR", "INFO")})
UNIQUE_ITEMS_REMOVED = per_context("items may now repeat", {
    "request-body-unique-items-removed": "INFO", "request-parameter-unique-items-removed": "INFO",
    "response-body-unique-items-removed": "WARN", "event-unique-items-removed": ("INFO", "WARN")})
RULES = declared(PATTERN_ADDED, PATTERN_REMOVED, PATTERN_CHANGED, PATTERN_NARROWED, PATTERN_WIDENED,
                 PATTERN_EQUIVALENT, MULTIPLE_OF_ADDED, MULTIPLE_OF_REMOVED,
                 MULTIPLE_OF_CHANGED, UNIQUE_ITEMS_ADDED, UNIQUE_ITEMS_REMOVED)

# keyword -> its change when added, removed, changed
_CONSTRAINTS = {"pattern": (PATTERN_ADDED, PATTERN_REMOVED, PATTERN_CHANGED),
                "multipleOf": (MULTIPLE_OF_ADDED, MULTIPLE_OF_REMOVED, MULTIPLE_OF_CHANGED)}


def check(diff: ApiDiff) -> Iterator[Finding]:
    judged: dict[tuple[str, str], patterns.Evidence | None] = {}  # per diff, so the budget is the diff's
    for pair in diff.schema_pairs:
        for keyword, (added, removed, changed) in _CONSTRAINTS.items():
            old, new = pair.old.get(keyword), pair.new.get(keyword)
            if old == new:
                continue
            if keyword == "pattern" and isinstance(old, str) and isinstance(new, str):
                yield from _pattern_changed(pair, old, new, judged)
            elif old is None:
                yield from schema_finding(pair, added, new=new)
            elif new is None:
                yield from schema_finding(pair, removed, old=old)
            else:
                yield from schema_finding(pair, changed, old=old, new=new)
        old_unique, new_unique = pair.old.get("uniqueItems") is True, pair.new.get("uniqueItems") is True
        if old_unique != new_unique:
            yield from schema_finding(pair, UNIQUE_ITEMS_ADDED if new_unique else UNIQUE_ITEMS_REMOVED)


def _pattern_changed(pair: SchemaPair, old: str, new: str,
                     judged: dict[tuple[str, str], patterns.Evidence | None]) -> Iterator[Finding]:
    if (old, new) not in judged and len(judged) >= patterns.BUDGET:
        yield from schema_finding(pair, PATTERN_CHANGED, old=old, new=new,
                                  why=f"more than {patterns.BUDGET} changed patterns in one diff")
        return
    evidence = judged[(old, new)] = judged.get((old, new)) or patterns.compare(old, new)
    if evidence is None:
        yield from schema_finding(pair, PATTERN_CHANGED, old=old, new=new, why="not a regex Python reads")
        return
    if evidence.lost is not None:
        yield from schema_finding(pair, PATTERN_NARROWED, old=old, new=new, example=show(evidence.lost))
    if evidence.gained is not None:
        yield from schema_finding(pair, PATTERN_WIDENED, old=old, new=new, example=show(evidence.gained))
    if evidence.lost is None and evidence.gained is None:
        yield from schema_finding(pair, PATTERN_EQUIVALENT, old=old, new=new)
