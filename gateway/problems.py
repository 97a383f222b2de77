"""RFC 9457 problem details: the one place errors become HTTP answers."""

from __future__ import annotations

from typing import Any

import msgspec

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://govgate.dev/problems/"


def problem_body(status: int, slug: str, title: str, detail: str, *, correlation_id: str,
                 instance: str | None = None, errors: list[Any] | None = None) -> bytes:
    """Encode a problem document; `slug` names the problem type."""
    problem: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "correlationId": correlation_id,
    }
    if instance:
        problem["instance"] = instance
    if errors:
        problem["errors"] = errors
    return msgspec.json.encode(problem)
