"""Payload rules: errors are RFC 9457 problem details; requests and successes come with examples."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from registry.lint_rules.support import Finding, media_types, operations, resolve, responses

PROBLEM_JSON = "application/problem+json"
_ERROR = re.compile(r"[45](?:\d\d|XX)|default")
_SUCCESS = re.compile(r"2(?:\d\d|XX)")


def error_response_problem_json(document: dict[str, Any]) -> Iterator[Finding]:
    """Every 4xx, 5xx and `default` response offers an application/problem+json body (HEAD is exempt)."""
    for op in operations(document):
        if op.method == "head":
            continue  # a HEAD response never has a body
        for status, response, where in responses(document, op):
            if not _ERROR.fullmatch(status):
                continue
            declared = [name for name, _media, _at in media_types(document, response, where)]
            if PROBLEM_JSON not in declared:
                found = ", ".join(declared) if declared else "no body"
                yield Finding("error-response-problem-json", where,
                              f"{status} response of {op.label} has {found}, not {PROBLEM_JSON}")


def operation_examples(document: dict[str, Any]) -> Iterator[Finding]:
    """Every request body media type and every 2xx response media type has an example."""
    for op in operations(document):
        if "requestBody" in op.node:
            for name, media, where in media_types(document, op.node["requestBody"], f"{op.pointer}/requestBody"):
                if not _has_example(document, media, where):
                    yield Finding("operation-examples", where, f"request body ({name}) of {op.label} has no example")
        for status, response, where in responses(document, op):
            if not _SUCCESS.fullmatch(status):
                continue
            for name, media, at in media_types(document, response, where):
                if not _has_example(document, media, at):
                    yield Finding("operation-examples", at, f"{status} response ({name}) of {op.label} has no example")


def _has_example(document: dict[str, Any], media: dict[str, Any], where: str) -> bool:
    if "example" in media or media.get("examples"):
        return True
    schema, _ = resolve(document, media.get("schema"), f"{where}/schema")
    return isinstance(schema, dict) and ("example" in schema or bool(schema.get("examples")))
