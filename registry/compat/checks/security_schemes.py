"""Security schemes in components: removed, added, retyped, token URL or scopes changed."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff

RULES = [
    Rule("security-scheme-removed", "ERR", "request", "security scheme {name} removed"),
    Rule("security-unused-scheme-removed", "INFO", "request",
         "security scheme {name} removed; no security requirement used it",
         why="A scheme only declared in components authenticates nothing: no client can have relied on it."),
    Rule("security-scheme-added", "INFO", "request", "security scheme {name} added"),
    Rule("security-scheme-type-changed", "ERR", "request", "security scheme {name} changed from {old} to {new}"),
    Rule("security-token-url-changed", "WARN", "request", "token URL of security scheme {name} changed"),
    Rule("security-scheme-scope-removed", "WARN", "request", "scopes {scopes} removed from security scheme {name}"),
    Rule("security-flow-removed", "ERR", "request", "OAuth flow {flow} removed from security scheme {name}"),
]


def check(diff: ApiDiff) -> Iterator[Finding]:
    old = (diff.old.root.get("components") or {}).get("securitySchemes") or {}
    new = (diff.new.root.get("components") or {}).get("securitySchemes") or {}
    used = _used_schemes(diff.old.root)
    for name in sorted(old.keys() - new.keys()):
        rule = "security-scheme-removed" if name in used else "security-unused-scheme-removed"
        yield Finding(rule, "", f"components securitySchemes {name}", {"name": name})
    for name in sorted(new.keys() - old.keys()):
        yield Finding("security-scheme-added", "", f"components securitySchemes {name}", {"name": name})
    for name in sorted(old.keys() & new.keys()):
        before, after = diff.old.deref(old[name]), diff.new.deref(new[name])
        location = f"components securitySchemes {name}"
        if before.get("type") != after.get("type") or before.get("scheme") != after.get("scheme"):
            yield Finding("security-scheme-type-changed", "", location,
                          {"name": name, "old": before.get("scheme") or before.get("type"),
                           "new": after.get("scheme") or after.get("type")})
        old_flows, new_flows = before.get("flows") or {}, after.get("flows") or {}
        for flow in sorted(old_flows.keys() & new_flows.keys()):
            if old_flows[flow].get("tokenUrl") != new_flows[flow].get("tokenUrl"):
                yield Finding("security-token-url-changed", "", f"{location} {flow}", {"name": name})
            removed = sorted((old_flows[flow].get("scopes") or {}).keys() - (new_flows[flow].get("scopes") or {}).keys())
            if removed:
                yield Finding("security-scheme-scope-removed", "", f"{location} {flow}",
                              {"name": name, "scopes": ", ".join(removed)})
        for flow in sorted(old_flows.keys() - new_flows.keys()):
            yield Finding("security-flow-removed", "", f"{location} {flow}", {"name": name, "flow": flow})


def _used_schemes(document: dict) -> set[str]:
    """Scheme names any security requirement of the document (top level or an operation's) names."""
    requirements = list(document.get("security") or [])
    for item in (document.get("paths") or {}).values():
        for operation in (item.values() if isinstance(item, dict) else []):
            if isinstance(operation, dict):
                requirements += operation.get("security") or []
    return {name for requirement in requirements if isinstance(requirement, dict) for name in requirement}
