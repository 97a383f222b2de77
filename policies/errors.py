"""What a policy raises to stop a request. The gateway renders it as RFC 9457 problem+json.

    GatewayProblem          any status, a stable `slug` naming the problem type
    └── ValidationFailed    400, with one entry per violated constraint
"""

from __future__ import annotations

from typing import Any


class GatewayProblem(Exception):
    """A request the gateway answers itself, with a problem document."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


class ValidationFailed(GatewayProblem):
    """The request breaks the published contract."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        count = len(errors)
        super().__init__(400, "validation-failed", "Request does not match the contract",
                         f"{count} validation error{'s' if count != 1 else ''}", errors=errors)
