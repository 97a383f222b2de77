"""Naming rules: kebab-case paths, camelCase properties, in API and event contracts alike."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from registry.lint_rules.support import (
    Finding, camel_case_violations, mapping, pointer, schema_roots, walk_schemas,
)

_TEMPLATE = re.compile(r"\{[^{}/]*\}")
_KEBAB = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_KEBAB_AROUND_TEMPLATE = re.compile(r"[a-z0-9.-]*")  # the literal part of `{id}.json` or `v{major}`


def path_kebab_case(document: dict[str, Any]) -> Iterator[Finding]:
    """Path segments are kebab-case (lower-case words and digits joined by `-`); `{templates}` are exempt."""
    for path in filter(_is_str, mapping(document, "paths")):
        segments = path.strip("/").split("/") if path.strip("/") else []
        bad = [s for s in segments if not _kebab(s)]
        if bad:
            yield Finding("path-kebab-case", pointer("paths", path),
                          f"path {path} has segments that are not kebab-case: {', '.join(repr(s) for s in bad)}")


def path_no_trailing_slash(document: dict[str, Any]) -> Iterator[Finding]:
    """Paths do not end with `/` (the root path `/` aside): `/orders` and `/orders/` would be two routes."""
    for path in filter(_is_str, mapping(document, "paths")):
        if len(path) > 1 and path.endswith("/"):
            yield Finding("path-no-trailing-slash", pointer("paths", path), f"path {path} ends with a slash")


def schema_property_camel_case(document: dict[str, Any]) -> Iterator[Finding]:
    """Property names are camelCase in component schemas and in schemas written inline."""
    yield from camel_case_violations(walk_schemas(document, schema_roots(document), follow_refs=False),
                                     "schema-property-camel-case")


def event_property_camel_case(document: dict[str, Any]) -> Iterator[Finding]:
    """Property names of an event schema (and its `$defs`) are camelCase."""
    yield from camel_case_violations(walk_schemas(document, [(document, "")], follow_refs=False),
                                     "event-property-camel-case")


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _kebab(segment: str) -> bool:
    literal = _TEMPLATE.sub("", segment)
    if literal == segment:
        return bool(_KEBAB.fullmatch(segment))
    return bool(_KEBAB_AROUND_TEMPLATE.fullmatch(literal))
