"""Numeric bounds, lengths and item counts tightened, loosened, added or removed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from registry.compat.checks import declared, per_context, schema_finding
from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff, SchemaPair
from registry.compat.views import Bound, lower, number, tighter_lower, tighter_upper, upper

MAX_DECREASED = per_context("maximum lowered from {old} to {new}", {
    "request-body-max-decreased": "ERR", "request-parameter-max-decreased": "ERR",
    "response-body-max-decreased": "INFO", "event-max-decreased": ("ERR", "INFO")})
MAX_INCREASED = per_context("maximum raised from {old} to {new}", {
    "request-body-max-increased": "INFO", "request-parameter-max-increased": "INFO",
    "response-body-max-increased": "WARN", "event-max-increased": ("INFO", "WARN")})
MAX_ADDED = per_context("maximum {new} added", {
    "request-body-max-added": "ERR", "request-parameter-max-added": "ERR",
    "response-body-max-added": "INFO", "event-max-added": ("ERR", "INFO")})
MAX_REMOVED = per_context("maximum {old} removed", {
    "request-body-max-removed": "INFO", "request-parameter-max-removed": "INFO",
    "response-body-max-removed": "WARN", "event-max-removed": ("INFO", "WARN")})
MIN_INCREASED = per_context("minimum raised from {old} to {new}", {
    "request-body-min-increased": "ERR", "request-parameter-min-increased": "ERR",
    "response-body-min-increased": "INFO", "event-min-increased": ("ERR", "INFO")})
MIN_DECREASED = per_context("minimum lowered from {old} to {new}", {
    "request-body-min-decreased": "INFO", "request-parameter-min-decreased": "INFO",
    "response-body-min-decreased": "WARN", "event-min-decreased": ("INFO", "WARN")})
MIN_ADDED = per_context("minimum {new} added", {
    "request-body-min-added": "ERR", "request-parameter-min-added": "ERR",
    "response-body-min-added": "INFO", "event-min-added": ("ERR", "INFO")})
MIN_REMOVED = per_context("minimum {old} removed", {
    "request-body-min-removed": "INFO", "request-parameter-min-removed": "INFO",
    "response-body-min-removed": "WARN", "event-min-removed": ("INFO", "WARN")})
MAX_LENGTH_DECREASED = per_context("maxLength lowered from {old} to {new}", {
    "request-body-max-length-decreased": "ERR", "request-parameter-max-length-decreased": "ERR",
    "response-body-max-length-decreased": "INFO", "event-max-length-decreased": ("ERR", "INFO")})
MAX_LENGTH_INCREASED = per_context("maxLength raised from {old} to {new}", {
    "request-body-max-length-increased": "INFO", "request-parameter-max-length-increased": "INFO",
    "response-body-max-length-increased": "WARN", "event-max-length-increased": ("INFO", "WARN")})
MAX_LENGTH_ADDED = per_context("maxLength {new} added", {
    "request-body-max-length-added": "ERR", "request-parameter-max-length-added": "ERR",
    "response-body-max-length-added": "INFO", "event-max-length-added": ("ERR", "INFO")})
MAX_LENGTH_REMOVED = per_context("maxLength {old} removed", {
    "request-body-max-length-removed": "INFO", "request-parameter-max-length-removed": "INFO",
    "response-body-max-length-removed": "WARN", "event-max-length-removed": ("INFO", "WARN")})
MIN_LENGTH_INCREASED = per_context("minLength raised from {old} to {new}", {
    "request-body-min-length-increased": "ERR", "request-parameter-min-length-increased": "ERR",
    "response-body-min-length-increased": "INFO", "event-min-length-increased": ("ERR", "INFO")})
MIN_LENGTH_DECREASED = per_context("minLength lowered from {old} to {new}", {
    "request-body-min-length-decreased": "INFO", "request-parameter-min-length-decreased": "INFO",
    "response-body-min-length-decreased": "WARN", "event-min-length-decreased": ("INFO", "WARN")})
MIN_LENGTH_ADDED = per_context("minLength {new} added", {
    "request-body-min-length-added": "ERR", "request-parameter-min-length-added": "ERR",
    "response-body-min-length-added": "INFO", "event-min-length-added": ("ERR", "INFO")})
MIN_LENGTH_REMOVED = per_context("minLength {old} removed", {
    "request-body-min-length-removed": "INFO", "request-parameter-min-length-removed": "INFO",
    "response-body-min-length-removed": "WARN", "event-min-length-removed": ("INFO", "WARN")})
MAX_ITEMS_DECREASED = per_context("maxItems lowered from {old} to {new}", {
    "request-body-max-items-decreased": "ERR", "request-parameter-max-items-decreased": "ERR",
    "response-body-max-items-decreased": "INFO", "event-max-items-decreased": ("ERR", "INFO")})
MAX_ITEMS_INCREASED = per_context("maxItems raised from {old} to {new}", {
    "request-body-max-items-increased": "INFO", "request-parameter-max-items-increased": "INFO",
    "response-body-max-items-increased": "WARN", "event-max-items-increased": ("INFO", "WARN")})
MAX_ITEMS_ADDED = per_context("maxItems {new} added", {
    "request-body-max-items-added": "ERR", "request-parameter-max-items-added": "ERR",
    "response-body-max-items-added": "INFO", "event-max-items-added": ("ERR", "INFO")})
MAX_ITEMS_REMOVED = per_context("maxItems {old} removed", {
    "request-body-max-items-removed": "INFO", "request-parameter-max-items-removed": "INFO",
    "response-body-max-items-removed": "WARN", "event-max-items-removed": ("INFO", "WARN")})
MIN_ITEMS_INCREASED = per_context("minItems raised from {old} to {new}", {
    "request-body-min-items-increased": "ERR", "request-parameter-min-items-increased": "ERR",
    "response-body-min-items-increased": "INFO", "event-min-items-increased": ("ERR", "INFO")})
MIN_ITEMS_DECREASED = per_context("minItems lowered from {old} to {new}", {
    "request-body-min-items-decreased": "INFO", "request-parameter-min-items-decreased": "INFO",
    "response-body-min-items-decreased": "WARN", "event-min-items-decreased": ("INFO", "WARN")})
MIN_ITEMS_ADDED = per_context("minItems {new} added", {
    "request-body-min-items-added": "ERR", "request-parameter-min-items-added": "ERR",
    "response-body-min-items-added": "INFO", "event-min-items-added": ("ERR", "INFO")})
MIN_ITEMS_REMOVED = per_context("minItems {old} removed", {
    "request-body-min-items-removed": "INFO", "request-parameter-min-items-removed": "INFO",
    "response-body-min-items-removed": "WARN", "event-min-items-removed": ("INFO", "WARN")})
RULES = declared(MAX_DECREASED, MAX_INCREASED, MAX_ADDED, MAX_REMOVED, MIN_INCREASED, MIN_DECREASED, MIN_ADDED,
                 MIN_REMOVED, MAX_LENGTH_DECREASED, MAX_LENGTH_INCREASED, MAX_LENGTH_ADDED, MAX_LENGTH_REMOVED,
                 MIN_LENGTH_INCREASED, MIN_LENGTH_DECREASED, MIN_LENGTH_ADDED, MIN_LENGTH_REMOVED,
                 MAX_ITEMS_DECREASED, MAX_ITEMS_INCREASED, MAX_ITEMS_ADDED, MAX_ITEMS_REMOVED,
                 MIN_ITEMS_INCREASED, MIN_ITEMS_DECREASED, MIN_ITEMS_ADDED, MIN_ITEMS_REMOVED)


Changes = tuple[dict[str, Rule], dict[str, Rule], dict[str, Rule], dict[str, Rule]]
# a rule says what happened to the value, its level what that means
Reader = Callable[[dict[str, Any], bool], Bound | None]
_NUMERIC: tuple[tuple[Reader, Callable[[Bound, Bound], bool], Changes], ...] = (
    # reader, tighter-than test, (added, removed, tightened, loosened)
    (upper, tighter_upper, (MAX_ADDED, MAX_REMOVED, MAX_DECREASED, MAX_INCREASED)),
    (lower, tighter_lower, (MIN_ADDED, MIN_REMOVED, MIN_INCREASED, MIN_DECREASED)),
)
_COUNTS: tuple[tuple[str, Changes], ...] = (  # keyword, (added, removed, increased, decreased)
    ("maxLength", (MAX_LENGTH_ADDED, MAX_LENGTH_REMOVED, MAX_LENGTH_INCREASED, MAX_LENGTH_DECREASED)),
    ("minLength", (MIN_LENGTH_ADDED, MIN_LENGTH_REMOVED, MIN_LENGTH_INCREASED, MIN_LENGTH_DECREASED)),
    ("maxItems", (MAX_ITEMS_ADDED, MAX_ITEMS_REMOVED, MAX_ITEMS_INCREASED, MAX_ITEMS_DECREASED)),
    ("minItems", (MIN_ITEMS_ADDED, MIN_ITEMS_REMOVED, MIN_ITEMS_INCREASED, MIN_ITEMS_DECREASED)),
)


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        yield from _numeric(pair)
        for keyword, changes in _COUNTS:
            yield from _compare(pair, changes, number(pair.old.get(keyword)), number(pair.new.get(keyword)))


def _numeric(pair: SchemaPair) -> Iterator[Finding]:
    for reader, tighter, (added, removed, tightened, loosened) in _NUMERIC:
        old, new = reader(pair.old, pair.old_30), reader(pair.new, pair.new_30)
        if old is None and new is not None:
            yield from schema_finding(pair, added, new=_show(new))
        elif old is not None and new is None:
            yield from schema_finding(pair, removed, old=_show(old))
        elif old is not None and new is not None and old != new:
            change = tightened if tighter(old, new) else loosened
            yield from schema_finding(pair, change, old=_show(old), new=_show(new))


def _compare(pair: SchemaPair, changes: Changes, old: float | None, new: float | None) -> Iterator[Finding]:
    added, removed, increased, decreased = changes
    if old is None and new is not None:
        yield from schema_finding(pair, added, new=new)
    elif old is not None and new is None:
        yield from schema_finding(pair, removed, old=old)
    elif old is not None and new is not None and old != new:
        yield from schema_finding(pair, increased if new > old else decreased, old=old, new=new)


def _show(bound: tuple[float, bool]) -> str:
    return f"{bound[0]} (exclusive)" if bound[1] else str(bound[0])
