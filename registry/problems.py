"""RFC 9457 problem details: the one error type of every layer, and the one place it becomes bytes.

    Problem                     status, slug (names the problem type), title, detail, errors, headers
    ├── registry.errors.*       the registry's refusals (InvalidDocument 422, NotFound 404, …)
    └── made by a ProblemType   the gateway's and the policies' refusals, declared as module constants

A module declares the problems it raises once, as a table of `ProblemType` constants, and
raises `RATE_LIMITED("detail", headers=…)`; so grepping a slug from a client's report finds
the one line that declares it. `render` is the only encoder of problem documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://govgate.dev/problems/"


class Problem(Exception):
    """A request the server answers itself, with a problem document."""

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"

    def __init__(self, detail: str, *, errors: list[Any] | None = None, headers: dict[str, str] | None = None,
                 status: int | None = None, slug: str | None = None, title: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        """One entry per violated constraint: {"in", "pointer", "message"} (registry documents: text lines)."""
        self.headers = headers or {}
        if status is not None:
            self.status = status
        if slug is not None:
            self.slug = slug
        if title is not None:
            self.title = title

    def render(self, *, correlation_id: str, instance: str | None = None) -> bytes:
        """The problem document, as every answer of the server encodes it."""
        problem: dict[str, Any] = {"type": TYPE_BASE + self.slug, "title": self.title, "status": self.status,
                                   "detail": self.detail, "correlationId": correlation_id}
        if instance:
            problem["instance"] = instance[:512]
        if self.errors:
            problem["errors"] = self.errors
        return msgspec.json.encode(problem)


@dataclass(frozen=True, slots=True)
class ProblemType:
    """One kind of problem a module raises: status, slug and title, declared once."""

    status: int
    slug: str
    title: str

    def __call__(self, detail: str, *, errors: list[Any] | None = None,
                 headers: dict[str, str] | None = None) -> Problem:
        """A problem of this type."""
        return Problem(detail, errors=errors, headers=headers, status=self.status, slug=self.slug, title=self.title)


INTERNAL_ERROR = ProblemType(500, "internal-error", "Internal error")
NOT_FOUND = ProblemType(404, "not-found", "Not found")
METHOD_NOT_ALLOWED = ProblemType(405, "method-not-allowed", "Method not allowed")


def internal_error() -> Problem:
    """What a bug answers: no detail of the failure reaches the client."""
    return INTERNAL_ERROR("the server failed; quote the correlation id")
