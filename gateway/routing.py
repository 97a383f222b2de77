"""The routing table: `/{contract}/v{major}/{path}` → an operation of a published version.

Compiled once from the published versions (validators, policy chain and upstream per
operation) and swapped atomically on reload; requests in flight keep the table they
started with.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from gateway.pipeline import Route
from policies.context import Policy
from registry.model import Contract, SemVer, Version
from registry.problems import METHOD_NOT_ALLOWED, NOT_FOUND, Problem

log = logging.getLogger("govgate.routing")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PREFIX = re.compile(r"^/([a-z][a-z0-9]*(?:[.-][a-z0-9]+)*)/v(0|[1-9][0-9]{0,5})(/.*)?$")


class _PathEntry:
    """The operations of one path template."""

    __slots__ = ("template", "pattern", "names", "literal_segments", "routes")

    def __init__(self, template: str) -> None:
        self.template = template
        segments = template.strip("/").split("/") if template.strip("/") else []
        self.names: list[str] = []
        regex = []
        for segment in segments:
            parts = re.split(r"\{([^}/]+)\}", segment)
            piece = ""
            for i, part in enumerate(parts):
                if i % 2:
                    self.names.append(part)
                    piece += "([^/]+)"
                else:
                    piece += re.escape(part)
            regex.append(piece)
        self.pattern = re.compile("^/" + "/".join(regex) + "$") if segments else re.compile("^/?$")
        self.literal_segments = sum(1 for s in segments if "{" not in s)
        self.routes: dict[str, Route] = {}


class _Api:
    """The newest published version of one contract major."""

    __slots__ = ("static", "templated", "version")

    def __init__(self, version: str) -> None:
        self.version = version
        self.static: dict[str, _PathEntry] = {}
        self.templated: list[_PathEntry] = []


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a published document, as the chain builder sees it."""

    contract: Contract
    version: Version
    document: dict[str, Any]
    template: str
    path_item: dict[str, Any]
    method: str
    operation: dict[str, Any]
    operation_id: str
    """One id for metrics, usage, rate-limit and idempotency scopes, also without an operationId."""


ChainFactory = Callable[[Operation], Sequence[Policy]]


class RoutingTable:
    """Finds the route for a request path and method."""

    def __init__(self, apis: dict[tuple[str, int], _Api] | None = None) -> None:
        self.apis = apis or {}
        self.failed: dict[str, str] = {}  # name@version -> why it could not be compiled

    @classmethod
    def compile(cls, published: Sequence[tuple[Contract, Version, str]], build_chain: ChainFactory) -> RoutingTable:
        """Build the table from published versions; within a major the newest version serves."""
        newest: dict[tuple[str, int], tuple[Contract, Version, str]] = {}
        for contract, version, document in published:
            if contract.kind != "openapi" or version.state not in ("published", "deprecated", "retired"):
                continue
            key = (contract.name, version.major)
            if key not in newest or SemVer.parse(version.version) > SemVer.parse(newest[key][1].version):
                newest[key] = (contract, version, document)
        apis, failed = {}, {}
        for key, entry in newest.items():
            try:
                apis[key] = _compile_api(*entry, build_chain)
            except Exception as exc:  # one bad document must not take the others down
                log.exception("cannot compile %s v%s; it is not served", *key)
                failed[f"{key[0]}@{entry[1].version}"] = f"{type(exc).__name__}: {exc}"[:300]
        table = cls(apis)
        table.failed = failed
        return table

    def match(self, path: str, method: str) -> tuple[Route, dict[str, str], str]:
        """(route, path parameters, operation path) for a request; a 404 / 405 Problem otherwise."""
        prefix = _PREFIX.match(path)
        if not prefix:
            raise _not_found(f"no governed API at {path[:200]!r}: paths look like /{{contract}}/v{{major}}/...")
        name, major, rest = prefix.group(1), int(prefix.group(2)), prefix.group(3) or "/"
        api = self.apis.get((name, major))
        if api is None:
            raise _not_found(f"no published contract {name!r} with major version {major}")
        entry = api.static.get(rest)
        params: dict[str, str] = {}
        if entry is None:
            for candidate in api.templated:
                found = candidate.pattern.match(rest)
                if found:
                    entry = candidate
                    params = {n: unquote(v) for n, v in zip(candidate.names, found.groups())}
                    break
        if entry is None:
            raise _not_found(f"{name} v{major} has no operation at {rest[:200]!r}")
        route = entry.routes.get(method.lower())
        if route is None:
            allowed = ", ".join(sorted(m.upper() for m in entry.routes))
            raise METHOD_NOT_ALLOWED(f"{method} is not an operation of {entry.template}; allowed: {allowed}",
                                     headers={"Allow": allowed})
        return route, params, rest

    def routes(self) -> list[Route]:
        """Every route, for listings and metrics."""
        out: list[Route] = []
        for api in self.apis.values():
            for entry in [*api.static.values(), *api.templated]:
                out.extend(entry.routes.values())
        return out


def _compile_api(contract: Contract, version: Version, document_text: str, build_chain: ChainFactory) -> _Api:
    document = json.loads(document_text)
    api = _Api(version.version)
    for template, path_item in (document.get("paths") or {}).items():
        entry = _PathEntry(template)
        for method in HTTP_METHODS:
            operation = path_item.get(method)
            if not isinstance(operation, dict):
                continue
            spec = Operation(contract, version, document, template, path_item, method, operation,
                             operation.get("operationId", f"{method} {template}"))
            entry.routes[method] = Route(contract.name, version.version, version.major, method, template,
                                         spec.operation_id, contract.upstream, build_chain(spec))
        if entry.names:
            api.templated.append(entry)
        else:
            api.static[template] = entry
    api.templated.sort(key=lambda e: (-e.literal_segments, e.template))
    return api


def _not_found(detail: str) -> Problem:
    return NOT_FOUND(detail)
