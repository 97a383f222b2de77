"""Request bodies added, removed, made required or optional; media types added or removed."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff

RULES = [
    Rule("request-body-added-required", "ERR", "request", "required request body added"),
    Rule("request-body-added-optional", "INFO", "request", "optional request body added"),
    Rule("request-body-removed", "WARN", "request", "request body removed"),
    Rule("request-body-became-required", "ERR", "request", "request body became required"),
    Rule("request-body-became-optional", "INFO", "request", "request body became optional"),
    Rule("request-body-media-type-removed", "ERR", "request", "request media type {media} removed"),
    Rule("request-body-media-type-added", "INFO", "request", "request media type {media} added"),
]


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.operations:
        old, new = diff.old.deref(pair.old.get("requestBody")), diff.new.deref(pair.new.get("requestBody"))
        if not isinstance(old, dict) and isinstance(new, dict):
            rule = "request-body-added-required" if new.get("required") else "request-body-added-optional"
            yield Finding(rule, pair.key, "request body")
            continue
        if isinstance(old, dict) and not isinstance(new, dict):
            yield Finding("request-body-removed", pair.key, "request body")
            continue
        if not isinstance(old, dict):
            continue
        if new.get("required") is True and old.get("required") is not True:
            yield Finding("request-body-became-required", pair.key, "request body")
        elif old.get("required") is True and new.get("required") is not True:
            yield Finding("request-body-became-optional", pair.key, "request body")
        old_media, new_media = old.get("content") or {}, new.get("content") or {}
        for media in sorted(old_media.keys() - new_media.keys()):
            yield Finding("request-body-media-type-removed", pair.key, f"request body {media}", {"media": media})
        for media in sorted(new_media.keys() - old_media.keys()):
            yield Finding("request-body-media-type-added", pair.key, f"request body {media}", {"media": media})
