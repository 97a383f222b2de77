"""Server URLs removed or added."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff

RULES = [
    Rule("api-server-removed", "WARN", "none", "server {url} removed"),
    Rule("api-server-added", "INFO", "none", "server {url} added"),
]


def check(diff: ApiDiff) -> Iterator[Finding]:
    old = {s.get("url") for s in diff.old.root.get("servers") or [] if isinstance(s, dict)}
    new = {s.get("url") for s in diff.new.root.get("servers") or [] if isinstance(s, dict)}
    for url in sorted(old - new, key=str):
        yield Finding("api-server-removed", "", "servers", {"url": url})
    for url in sorted(new - old, key=str):
        yield Finding("api-server-added", "", "servers", {"url": url})
