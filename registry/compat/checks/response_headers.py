"""Response headers added, removed, or made optional."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff, responses

RULES = [
    Rule("response-required-header-removed", "ERR", "response", "required response header {name} removed"),
    Rule("response-optional-header-removed", "WARN", "response", "response header {name} removed"),
    Rule("response-header-added", "INFO", "response", "response header {name} added"),
    Rule("response-header-became-optional", "ERR", "response", "response header {name} became optional"),
]


def check(diff: ApiDiff) -> Iterator[Finding]:
    for pair in diff.operations:
        old_responses, new_responses = responses(pair.old), responses(pair.new)
        for status in sorted(old_responses.keys() & new_responses.keys()):
            old = _headers(diff.old.deref(old_responses[status]), diff.old)
            new = _headers(diff.new.deref(new_responses[status]), diff.new)
            for name in sorted(old.keys() - new.keys()):
                rule = "response-required-header-removed" if old[name].get("required") else \
                    "response-optional-header-removed"
                yield Finding(rule, pair.key, f"response {status} header {name}", {"name": name})
            for name in sorted(new.keys() - old.keys()):
                yield Finding("response-header-added", pair.key, f"response {status} header {name}", {"name": name})
            for name in sorted(old.keys() & new.keys()):
                if old[name].get("required") is True and new[name].get("required") is not True:
                    yield Finding("response-header-became-optional", pair.key, f"response {status} header {name}",
                                  {"name": name})


def _headers(response: object, document: object) -> dict[str, dict]:
    headers = response.get("headers") if isinstance(response, dict) else None
    return {k.lower(): document.deref(v) for k, v in (headers or {}).items()}  # type: ignore[attr-defined]
