"""Per-request state shared by the policies of one route, and the protocol they share.

A policy has up to three phases, after Kong's plugin handlers:

    on_request(ctx)          before the upstream, in chain order; may raise a Problem to
                             answer at once, or answer itself (ctx.answer(...)) to skip the rest
    on_response(ctx)         after the upstream (or an answer), in reverse order
    on_finish(ctx)           always, in reverse order, for every policy whose on_request ran:
                             release what on_request took, count, log (ctx.problem says why it failed)

Each may be a plain or an async method. Per-request state lives on the context, never on
the policy: one policy object serves every request of its route concurrently.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from policies.identity import Caller
    from policies.idempotency import Claim
    from registry.problems import Problem

ValidationMode = Literal["enforce", "report", "off"]
UpstreamFailure = Literal["upstream-unavailable", "upstream-timeout", "upstream-response-invalid"]
"""Why an upstream call failed, as metrics label it; unavailable and timeout also open the breaker."""
SlotState = Literal["held", "released", "shed", "timed-out"]


class RouteInfo(Protocol):
    """What policies read of the route a request took (an API operation or an event stream action)."""

    @property
    def contract(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def major(self) -> int: ...
    @property
    def operation_id(self) -> str: ...
    @property
    def upstream(self) -> str | None: ...


class RequestContext:
    """One request on its way through the chain; policies read and annotate it.

    Besides the request and the response, each policy that hands state from one phase to the
    next, or reports to another, has a typed field of its own here (after the blank line below).
    """

    __slots__ = (
        "method", "path", "raw_path", "query_string", "headers", "client", "scheme", "host",
        "body", "path_params", "correlation_id", "route", "response_status", "response_headers",
        "response_body", "consumer", "answered", "problem", "add_headers", "started", "reached",
        "request_invalid", "request_violations", "response_invalid", "response_violations", "rate_limited",
        "upstream_status", "upstream_failure", "upstream_retries", "breaker_epoch", "protection_slot",
        "idempotency_claim",
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
        self.route: RouteInfo | None = None
        self.consumer: Caller | None = None  # set by authentication: who is calling
        self.response_status = 0
        self.response_headers: list[tuple[str, str]] = []
        self.response_body = b""
        self.answered = False
        self.reached = -1  # the chain index of the last policy whose on_request ran: those finish
        self.problem: Problem | None = None
        self.add_headers: list[tuple[str, str]] = []  # go on every answer, problems included
        self.started = time.perf_counter()

        self.request_invalid: ValidationMode | None = None  # request validation found violations, in this mode
        self.request_violations: list[Any] = []
        self.response_invalid: ValidationMode | None = None  # response validation found violations, in this mode
        self.response_violations: list[Any] = []
        self.rate_limited: Literal["rate-limited", "quota-exceeded"] | None = None
        self.upstream_status: int | None = None  # what the upstream answered, whatever a policy made of it
        self.upstream_failure: UpstreamFailure | None = None
        self.upstream_retries = 0
        self.breaker_epoch: int | None = None  # the circuit breaker let this request through in this epoch
        self.protection_slot: SlotState | None = None  # backend protection's slot for this request
        self.idempotency_claim: Claim | None = None  # the Idempotency-Key this request holds until it finishes

    def answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Answer without calling the upstream (a replayed response, say)."""
        self.response_status = status
        self.response_headers = headers
        self.response_body = body
        self.answered = True


class Policy:
    """Base of every policy: the phases it does not override cost nothing (they are skipped)."""

    reads_body = False
    """on_request needs `ctx.body`. The policies before the first one that does run while the body
    arrives, so that an authentication or rate-limit round trip overlaps the body read."""
    only_records = False
    """on_finish only records (metrics, logs, usage), so it runs after the client has its answer."""

    def on_request(self, ctx: RequestContext) -> Awaitable[None] | None:
        """Inspect or annotate the request before the upstream sees it."""
        return None

    def on_response(self, ctx: RequestContext) -> Awaitable[None] | None:
        """Inspect or annotate the response before the client sees it."""
        return None

    def on_finish(self, ctx: RequestContext) -> Awaitable[None] | None:
        """Clean up and record, whatever happened."""
        return None


def overrides(policy: Policy, phase: str) -> bool:
    """Whether a policy implements a phase (so the gateway calls it at all)."""
    return getattr(type(policy), phase) is not getattr(Policy, phase)
