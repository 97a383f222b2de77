"""Numeric bounds, lengths and item counts tightened, loosened, added or removed, judged by their effect.

A constraint counts by what it admits, not by its presence: `minLength: 0` or `minItems: 0` admit
everything; on an integer, `exclusiveMinimum: 0` is `minimum: 1`; a format int32/int64 and an
anchored pattern (`^[0-9]{5}$`) already bound values and lengths, as long as they stay the same;
and a bound every value of the enum satisfies restricts nothing. Only a change in what is admitted
is reported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from registry.compat.checks import declared, per_context, schema_finding
from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff, SchemaPair
from registry.compat.views import Bound, enum, lower, number, tighter_lower, tighter_upper, types, upper

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


_FORMAT_RANGES = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        old_schema, new_schema = diff.merged(pair)  # every allOf member's limit applies too
        yield from _numeric(pair, old_schema, new_schema)
        same_pattern = old_schema.get("pattern") == new_schema.get("pattern")
        for keyword, changes in _COUNTS:
            old, new = _count(old_schema, keyword, same_pattern), _count(new_schema, keyword, same_pattern)
            if old != new and not _enum_unaffected(pair, lambda v: _fits_count(v, keyword, old, new)):
                yield from _compare(pair, changes, old, new)


def _numeric(pair: SchemaPair, old_schema: dict[str, Any], new_schema: dict[str, Any]) -> Iterator[Finding]:
    same_format = old_schema.get("format") == new_schema.get("format")
    for reader, tighter, (added, removed, tightened, loosened) in _NUMERIC:
        old = _effective_bound(old_schema, reader(old_schema, pair.old_30), reader is lower, same_format)
        new = _effective_bound(new_schema, reader(new_schema, pair.new_30), reader is lower, same_format)
        if old == new or _enum_unaffected(pair, lambda v: _fits_bound(v, old, new, reader is lower)):
            continue
        if old is None and new is not None:
            yield from schema_finding(pair, added, new=_show(new))
        elif old is not None and new is None:
            yield from schema_finding(pair, removed, old=_show(old))
        elif old is not None and new is not None:
            change = tightened if tighter(old, new) else loosened
            yield from schema_finding(pair, change, old=_show(old), new=_show(new))


def _effective_bound(schema: dict[str, Any], bound: Bound | None, is_lower: bool, same_format: bool) -> Bound | None:
    """The bound by effect: an integer's bounds made inclusive, and a kept int32/int64 format's range applied."""
    if types(schema) != {"integer"}:
        return bound
    if bound is not None:
        value, exclusive = bound
        if is_lower:
            bound = (math.floor(value) + 1 if exclusive else math.ceil(value), False)
        else:
            bound = (math.ceil(value) - 1 if exclusive else math.floor(value), False)
    limits = _FORMAT_RANGES.get(str(schema.get("format"))) if same_format else None
    if limits is None:
        return bound
    implied: Bound = (limits[0] if is_lower else limits[1], False)
    if bound is None:
        return implied
    return (max(bound[0], implied[0]), False) if is_lower else (min(bound[0], implied[0]), False)


def _count(schema: dict[str, Any], keyword: str, same_pattern: bool) -> float | None:
    """A length or count limit by effect: a minimum of 0 is none, and a kept anchored pattern bounds lengths."""
    value = number(schema.get(keyword))
    if keyword.startswith("min") and value is not None and value <= 0:
        value = None
    if same_pattern and keyword in ("minLength", "maxLength") and value is not None:
        shortest, longest = pattern_lengths(schema.get("pattern"))
        if keyword == "maxLength" and longest is not None and longest <= value:
            value = None  # the pattern already allows no longer strings
        if keyword == "minLength" and value is not None and value <= shortest:
            value = None  # the pattern already allows no shorter strings
    return value


def pattern_lengths(pattern: Any) -> tuple[int, int | None]:
    """(shortest, longest or None) length of the strings an anchored pattern fully matches; (0, None) otherwise."""
    if not isinstance(pattern, str) or not pattern.startswith("^") or not pattern.endswith("$") \
            or pattern.endswith("\\$"):
        return 0, None
    try:
        parsed = _parse_regex(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return 0, None
    items = list(parsed)
    anchored = len(items) >= 2 and str(items[0][1]) == "AT_BEGINNING" and str(items[-1][1]) in ("AT_END",
                                                                                                   "AT_END_STRING")
    if not anchored:
        return 0, None
    shortest, longest = parsed.getwidth()
    return shortest, longest if longest < 1 << 16 else None


def _parse_regex(pattern: str) -> Any:
    import re._parser as sre_parse  # the parser behind re (sre_parse before 3.11)

    return sre_parse.parse(pattern)


def _enum_unaffected(pair: SchemaPair, fits: Callable[[Any], bool]) -> bool:
    """Whether the schemas only admit enum values, each of which both the old and the new constraint admit."""
    old_values, new_values = enum(pair.old), enum(pair.new)
    if new_values is None:
        return False
    return all(fits(v) for v in [*(old_values or []), *new_values])


def _fits_count(value: Any, keyword: str, *limits: float | None) -> bool:
    kind = list if keyword.endswith("Items") else str
    if not isinstance(value, kind):
        return True
    size = len(value)
    return all(limit is None or (size <= limit if keyword.startswith("max") else size >= limit) for limit in limits)


def _fits_bound(value: Any, old: Bound | None, new: Bound | None, is_lower: bool) -> bool:
    if number(value) is None:
        return True
    for bound in (old, new):
        if bound is None:
            continue
        limit, exclusive = bound
        if is_lower and (value < limit or exclusive and value == limit):
            return False
        if not is_lower and (value > limit or exclusive and value == limit):
            return False
    return True


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
