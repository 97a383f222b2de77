"""Numeric bounds, lengths and item counts tightened, loosened, added or removed."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.checks import schema_finding
from registry.compat.model import Finding
from registry.compat.structure import ApiDiff, SchemaPair
from registry.compat.views import lower, number, tighter_lower, tighter_upper, upper

# (keyword, rule prefix): a rule says what happened to the value, its level says what that means
_COUNTS = (("maxLength", "max-length"), ("minLength", "min-length"), ("maxItems", "max-items"),
           ("minItems", "min-items"))


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.schema_pairs:
        yield from _numeric(pair)
        for keyword, prefix in _COUNTS:
            yield from _compare(pair, prefix, number(pair.old.get(keyword)), number(pair.new.get(keyword)))


def _numeric(pair: SchemaPair) -> Iterator[Finding]:
    for prefix, reader, tighter in (("max", upper, tighter_upper), ("min", lower, tighter_lower)):
        old, new = reader(pair.old, pair.old_30), reader(pair.new, pair.new_30)
        if old is None and new is not None:
            yield schema_finding(pair, f"{prefix}-added", new=_show(new))
        elif old is not None and new is None:
            yield schema_finding(pair, f"{prefix}-removed", old=_show(old))
        elif old is not None and new is not None and old != new:
            narrowed = tighter(old, new)
            verb = ("decreased" if prefix == "max" else "increased") if narrowed else \
                ("increased" if prefix == "max" else "decreased")
            yield schema_finding(pair, f"{prefix}-{verb}", old=_show(old), new=_show(new))


def _compare(pair: SchemaPair, prefix: str, old: float | None, new: float | None) -> Iterator[Finding]:
    if old is None and new is not None:
        yield schema_finding(pair, f"{prefix}-added", new=new)
    elif old is not None and new is None:
        yield schema_finding(pair, f"{prefix}-removed", old=old)
    elif old is not None and new is not None and old != new:
        yield schema_finding(pair, f"{prefix}-{'increased' if new > old else 'decreased'}", old=old, new=new)


def _show(bound: tuple[float, bool]) -> str:
    return f"{bound[0]} (exclusive)" if bound[1] else str(bound[0])
