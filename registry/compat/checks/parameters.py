"""Parameters added, removed, made required or optional, moved, restyled, deprecated."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff, both_parameters

RULES = [
    Rule("request-parameter-added-required", "ERR", "request", "required parameter {name} added"),
    Rule("request-parameter-added-optional", "INFO", "request", "optional parameter {name} added"),
    Rule("request-parameter-removed", "WARN", "request", "parameter {name} removed",
         why="Servers usually ignore a query parameter they do not know, so a client that still sends it "
             "gets an answer, but no longer the behaviour it asked for (a filter, a page size): it may break "
             "silently, not loudly. A removed path parameter changes the operation and is reported as such."),
    Rule("request-parameter-became-required", "ERR", "request", "parameter {name} became required"),
    Rule("request-parameter-became-optional", "INFO", "request", "parameter {name} became optional"),
    Rule("request-parameter-location-changed", "ERR", "request", "parameter {name} moved from {old} to {new}"),
    Rule("request-parameter-style-changed", "ERR", "request", "parameter {name} style changed from {old} to {new}"),
    Rule("request-parameter-explode-changed", "ERR", "request", "parameter {name} explode changed from {old} to {new}"),
    Rule("request-parameter-deprecated", "INFO", "request", "parameter {name} deprecated"),
    Rule("request-parameter-empty-value-disallowed", "ERR", "request", "parameter {name} may no longer be empty"),
]

_DEFAULT_STYLE = {"query": "form", "cookie": "form", "path": "simple", "header": "simple"}


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.operations:
        old, new = both_parameters(diff, pair)
        moved = {name for (_, name) in old} & {name for (_, name) in new}
        for key in new.keys() - old.keys():
            where, name = key
            origin = next((o for (o, n) in old if n == name and (o, n) not in new), None)
            if origin is not None:
                yield Finding("request-parameter-location-changed", pair.key, f"{where} parameter {name}",
                              {"name": name, "old": origin, "new": where})
            elif new[key].get("required") or where == "path":
                yield Finding("request-parameter-added-required", pair.key, f"{where} parameter {name}",
                              {"name": name})
            else:
                yield Finding("request-parameter-added-optional", pair.key, f"{where} parameter {name}",
                              {"name": name})
        for key in old.keys() - new.keys():
            where, name = key
            if name in moved and any(n == name for (_, n) in new.keys() - old.keys()):
                continue  # reported as a location change
            yield Finding("request-parameter-removed", pair.key, f"{where} parameter {name}", {"name": name})
        for key in sorted(old.keys() & new.keys()):
            yield from _changed(pair.key, key, old[key], new[key])


def _changed(operation: str, key: tuple[str, str], old: dict, new: dict) -> Iterator[Finding]:
    where, name = key
    location = f"{where} parameter {name}"
    if new.get("required") is True and old.get("required") is not True and where != "path":
        yield Finding("request-parameter-became-required", operation, location, {"name": name})
    elif old.get("required") is True and new.get("required") is not True and where != "path":
        yield Finding("request-parameter-became-optional", operation, location, {"name": name})
    default_style = _DEFAULT_STYLE.get(where, "form")
    old_style, new_style = old.get("style", default_style), new.get("style", default_style)
    if old_style != new_style:
        yield Finding("request-parameter-style-changed", operation, location,
                      {"name": name, "old": old_style, "new": new_style})
    old_explode = old.get("explode", old_style == "form")
    new_explode = new.get("explode", new_style == "form")
    if old_explode != new_explode:
        yield Finding("request-parameter-explode-changed", operation, location,
                      {"name": name, "old": old_explode, "new": new_explode})
    if new.get("deprecated") is True and old.get("deprecated") is not True:
        yield Finding("request-parameter-deprecated", operation, location, {"name": name})
    if old.get("allowEmptyValue") is True and new.get("allowEmptyValue") is not True:
        yield Finding("request-parameter-empty-value-disallowed", operation, location, {"name": name})
