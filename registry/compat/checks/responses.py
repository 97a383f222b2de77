"""Response statuses and their media types added or removed."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff, responses

RULES = [
    Rule("response-success-status-removed", "ERR", "response", "success response {status} removed"),
    Rule("response-non-success-status-removed", "WARN", "response", "response {status} removed"),
    Rule("response-success-status-added", "INFO", "response", "success response {status} added"),
    Rule("response-non-success-status-added", "INFO", "response", "response {status} added"),
    Rule("response-media-type-removed", "ERR", "response", "response {status} media type {media} removed"),
    Rule("response-media-type-added", "INFO", "response", "response {status} media type {media} added"),
]


def _success(status: str) -> bool:
    return status.startswith("2") or status.upper() == "2XX"


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.operations:
        old, new = responses(pair.old), responses(pair.new)
        for status in sorted(old.keys() - new.keys()):
            rule = "response-success-status-removed" if _success(status) else "response-non-success-status-removed"
            yield Finding(rule, pair.key, f"response {status}", {"status": status})
        for status in sorted(new.keys() - old.keys()):
            rule = "response-success-status-added" if _success(status) else "response-non-success-status-added"
            yield Finding(rule, pair.key, f"response {status}", {"status": status})
        for status in sorted(old.keys() & new.keys()):
            old_response, new_response = diff.old.deref(old[status]), diff.new.deref(new[status])
            old_media = (old_response or {}).get("content") or {}
            new_media = (new_response or {}).get("content") or {}
            for media in sorted(old_media.keys() - new_media.keys()):
                yield Finding("response-media-type-removed", pair.key, f"response {status} {media}",
                              {"status": status, "media": media})
            for media in sorted(new_media.keys() - old_media.keys()):
                yield Finding("response-media-type-added", pair.key, f"response {status} {media}",
                              {"status": status, "media": media})
