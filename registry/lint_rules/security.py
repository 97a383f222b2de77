"""Security rules: every operation is protected, by schemes that exist, over HTTPS."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from registry.lint_rules.support import Finding, escape, mapping, operations, pointer, sequence

_PLAIN_SCHEMES = frozenset({"http", "ws"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def operation_security_defined(document: dict[str, Any]) -> Iterator[Finding]:
    """Every operation has a non-empty security requirement, its own or the document's, with no anonymous `{}`."""
    for op in operations(document):
        own = "security" in op.node
        requirements = op.node["security"] if own else document.get("security")
        where = f"{op.pointer}/security" if own else op.pointer
        if not isinstance(requirements, list) or not requirements:
            yield Finding("operation-security-defined", where, f"{op.label} requires no authentication"
                          + (" (its `security` is empty)" if own else " (no `security` here or at the top level)"))
        elif any(requirement == {} for requirement in requirements):
            yield Finding("operation-security-defined", where,
                          f"{op.label} lets anonymous callers in: one of its security requirements is `{{}}`")


def security_scheme_defined(document: dict[str, Any]) -> Iterator[Finding]:
    """Every security requirement names a declared security scheme, and OAuth 2.0 scopes that a flow declares."""
    schemes = mapping(mapping(document, "components"), "securitySchemes")
    places = [("", document)] + [(op.pointer, op.node) for op in operations(document)]
    for where, owner in places:
        for index, requirement in enumerate(sequence(owner, "security")):
            for name, scopes in (requirement.items() if isinstance(requirement, dict) else ()):
                at = f"{where}/security/{index}/{escape(str(name))}"
                scheme = schemes.get(name)
                if not isinstance(scheme, dict):
                    yield Finding("security-scheme-defined", at,
                                  f"security scheme {name!r} is not declared in components.securitySchemes")
                    continue
                if scheme.get("type") != "oauth2":
                    continue
                known = {scope for flow in mapping(scheme, "flows").values() for scope in mapping(flow, "scopes")}
                for scope in scopes if isinstance(scopes, list) else ():
                    if scope not in known:
                        yield Finding("security-scheme-defined", at,
                                      f"scope {scope!r} is not declared by any flow of security scheme {name!r}")


def server_https(document: dict[str, Any]) -> Iterator[Finding]:
    """Server URLs use https (or wss); loopback hosts (localhost, 127.0.0.0/8, ::1) are exempt."""
    owners = [("", document)] + [(pointer("paths", path), item) for path, item in mapping(document, "paths").items()]
    owners += [(op.pointer, op.node) for op in operations(document)]
    for where, owner in owners:
        for index, server in enumerate(sequence(owner, "servers")):
            url = _expand(server) if isinstance(server, dict) else None
            if url is None:
                continue
            try:
                parts = urlsplit(url)
                host = parts.hostname
            except ValueError:
                continue  # not a URL at all: the structural check reports it
            if parts.scheme.lower() in _PLAIN_SCHEMES and not _loopback(host):
                yield Finding("server-https", f"{where}/servers/{index}/url",
                              f"server {url!r} uses plain {parts.scheme}: use {parts.scheme}s")


def _expand(server: dict[str, Any]) -> str | None:
    url = server.get("url")
    if not isinstance(url, str):
        return None
    for name, variable in mapping(server, "variables").items():
        if isinstance(variable, dict):
            url = url.replace("{" + name + "}", str(variable.get("default", "")))
    return url


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
