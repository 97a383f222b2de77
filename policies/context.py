"""Per-request state shared by the policies of one route."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable


class RequestContext:
    """One request on its way through the chain; policies read and annotate it."""

    __slots__ = (
        "method", "path", "raw_path", "query_string", "headers", "client", "scheme", "host",
        "body", "path_params", "correlation_id", "route", "response_status", "response_headers",
        "response_body", "extra",
    )

    def __init__(
        self,
        *,
        method: str,
        path: str,
        raw_path: str,
        query_string: str,
        headers: dict[str, str],
        client: str,
        scheme: str,
        host: str,
    ) -> None:
        self.method = method
        self.path = path  # the operation path inside the contract, e.g. /orders/42
        self.raw_path = raw_path  # the same, percent-encoded as the client sent it
        self.query_string = query_string
        self.headers = headers  # lower-case names; repeated headers joined with ", "
        self.client = client
        self.scheme = scheme
        self.host = host
        self.body = b""
        self.path_params: dict[str, str] = {}
        self.correlation_id = ""
        self.route: Any = None
        self.response_status = 0
        self.response_headers: list[tuple[str, str]] = []
        self.response_body = b""
        self.extra: dict[str, Any] = {}


class Policy(Protocol):
    """A step of the chain. `on_request` may raise GatewayProblem to answer at once."""

    def on_request(self, ctx: RequestContext) -> Awaitable[None] | None:
        """Inspect or annotate the request before the upstream sees it."""

    def on_response(self, ctx: RequestContext) -> None:
        """Inspect or annotate the response before the client sees it."""
