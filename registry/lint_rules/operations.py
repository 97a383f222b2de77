"""Operation rules: identity (operationId), documentation, tags and a success response."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from registry.lint_rules.support import Finding, mapping, operations, sequence

_SUCCESS = re.compile(r"[23](?:\d\d|XX)")


def operation_id_present(document: dict[str, Any]) -> Iterator[Finding]:
    """Every operation has a non-empty operationId: generated clients and the registry name it by it."""
    for op in operations(document):
        if not _text(op.node.get("operationId")):
            yield Finding("operation-id-present", op.pointer, f"{op.label} has no operationId")


def operation_id_unique(document: dict[str, Any]) -> Iterator[Finding]:
    """No two operations share an operationId."""
    first: dict[str, str] = {}
    for op in operations(document):
        operation_id = op.node.get("operationId")
        if not isinstance(operation_id, str) or not _text(operation_id):
            continue
        if operation_id in first:
            yield Finding("operation-id-unique", f"{op.pointer}/operationId",
                          f"operationId {operation_id!r} of {op.label} is already used by {first[operation_id]}")
        else:
            first[operation_id] = op.label


def operation_description(document: dict[str, Any]) -> Iterator[Finding]:
    """Every operation has a summary or a description."""
    for op in operations(document):
        if not (_text(op.node.get("summary")) or _text(op.node.get("description"))):
            yield Finding("operation-description", op.pointer, f"{op.label} has neither a summary nor a description")


def operation_success_response(document: dict[str, Any]) -> Iterator[Finding]:
    """Every operation declares at least one 2xx or 3xx response."""
    for op in operations(document):
        if not any(_SUCCESS.fullmatch(str(status)) for status in mapping(op.node, "responses")):
            yield Finding("operation-success-response", f"{op.pointer}/responses" if "responses" in op.node
                          else op.pointer, f"{op.label} declares no 2xx or 3xx response")


def operation_tags_defined(document: dict[str, Any]) -> Iterator[Finding]:
    """Every operation has a tag, and every tag it uses is declared in the top-level `tags`."""
    declared = {tag["name"] for tag in sequence(document, "tags") if isinstance(tag, dict) and _text(tag.get("name"))}
    for op in operations(document):
        tags = sequence(op.node, "tags")
        if not tags:
            yield Finding("operation-tags-defined", op.pointer, f"{op.label} has no tag")
        for index, tag in enumerate(tags):
            if not isinstance(tag, str) or tag not in declared:
                yield Finding("operation-tags-defined", f"{op.pointer}/tags/{index}",
                              f"tag {tag!r} of {op.label} is not declared in the top-level tags")


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
