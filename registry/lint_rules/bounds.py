"""Bound rules: what a client sends has a size limit (maxLength, maxItems), so the gateway can cap it.

Only request bodies and event payloads are checked: parameters and headers are bounded by the
gateway's header and URL limits (the X-Correlation-ID header is deliberately a bare string, as
the gateway replaces a bad id instead of refusing the call), and responses come from our own systems.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from registry.lint_rules.support import (
    BOUNDED_FORMATS, Finding, array_unbounded, media_types, operations, string_unbounded, walk_schemas,
)

_STRING_HINT = f"maxLength, enum, const or a bounded format ({', '.join(sorted(BOUNDED_FORMATS))})"


def request_string_bounded(document: dict[str, Any]) -> Iterator[Finding]:
    """Every string in a request body has a maxLength, an enum or const, or a length-bounding format."""
    for where, label in _request_schemas(document, string_unbounded):
        yield Finding("request-string-bounded", where, f"string in the request body of {label} has no {_STRING_HINT}")


def request_array_bounded(document: dict[str, Any]) -> Iterator[Finding]:
    """Every array in a request body has a maxItems."""
    for where, label in _request_schemas(document, array_unbounded):
        yield Finding("request-array-bounded", where, f"array in the request body of {label} has no maxItems")


def event_string_bounded(document: dict[str, Any]) -> Iterator[Finding]:
    """Every string in an event schema has a maxLength, an enum or const, or a length-bounding format."""
    for schema, where in walk_schemas(document, [(document, "")], follow_refs=False):
        if string_unbounded(schema):
            yield Finding("event-string-bounded", where, f"string has no {_STRING_HINT}")


def event_array_bounded(document: dict[str, Any]) -> Iterator[Finding]:
    """Every array in an event schema has a maxItems."""
    for schema, where in walk_schemas(document, [(document, "")], follow_refs=False):
        if array_unbounded(schema):
            yield Finding("event-array-bounded", where, "array has no maxItems")


def _request_schemas(document: dict[str, Any],
                     unbounded: Callable[[dict[str, Any]], bool]) -> Iterator[tuple[str, str]]:
    """(pointer, operation) of each unbounded schema a request body reaches, once, for the first operation."""
    reported: set[str] = set()
    for op in operations(document):
        if "requestBody" not in op.node:
            continue
        roots = [(media.get("schema"), f"{at}/schema")
                 for _name, media, at in media_types(document, op.node["requestBody"], f"{op.pointer}/requestBody")]
        for schema, where in walk_schemas(document, roots, follow_refs=True):
            if where not in reported and unbounded(schema):
                reported.add(where)
                yield where, op.label
