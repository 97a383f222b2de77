"""Circuit breaker: stop calling an upstream that keeps failing, probe it after a cool-down.

    closed ──(N failures in a row, or error rate over the window)──▶ open
    open ──(open_seconds later, next request)──▶ half_open: up to half_open_probes go through
    half_open ──(every probe succeeds)──▶ closed
    half_open ──(a probe fails)──▶ open

Only the upstream's own outcome counts: a 502 / 504 problem of the upstream call or a status
>= 500 the upstream answered. What the gateway refuses by itself (400, 429, a 503 of backend
protection) says nothing about the upstream and is not recorded.

Place the policy before backend protection in the chain, so that a request refused here never
waits for a slot. It reads what the upstream call left on the context:

    ctx.breaker_epoch      the breaker epoch a let-through request holds until on_finish
    ctx.upstream_status    the status the upstream answered (whatever a policy made of it later)
    ctx.upstream_failure   why the call failed: unavailable and timeout count against the upstream
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated, Literal

import msgspec

from policies.context import Policy, RequestContext
from registry.problems import ProblemType

log = logging.getLogger("govgate.circuit_breaker")

State = Literal["closed", "open", "half_open"]
CIRCUIT_OPEN = ProblemType(503, "circuit-open", "Upstream circuit open")


class CircuitBreakerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When an upstream counts as down and how the gateway finds out it is back."""

    enabled: bool = True
    """Off: every request goes through and nothing is counted."""
    consecutive_failures: Annotated[int, msgspec.Meta(ge=1)] = 5
    """Open after this many upstream failures in a row."""
    error_rate: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    """Open when the share of failures in the window exceeds this..."""
    min_requests: Annotated[int, msgspec.Meta(ge=1)] = 20
    """...and the window holds at least this many outcomes."""
    window_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10
    """Length of the sliding window the error rate is computed over."""
    open_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5
    """Cool-down while open: requests get 503 until a probe may go."""
    half_open_probes: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    """Requests let through at once while half-open; that many successes close the circuit."""


class CircuitBreaker:
    """The state of one upstream, shared by every route that calls it."""

    def __init__(self, config: CircuitBreakerConfig, name: str = "", *,
                 clock: Callable[[], float] = time.monotonic,
                 on_state_change: Callable[[str, str], None] | None = None) -> None:
        """`on_state_change(name, state)` is called on every transition (a metrics gauge, say)."""
        self.name = name
        self.config = config
        self.clock = clock
        self.on_state_change = on_state_change
        self.state: State = "closed"
        self.opened_total = 0
        self.epoch = 0  # bumped on every transition: outcomes of an older epoch are stale
        self._opened_at = 0.0
        self._consecutive = 0
        self._window: deque[tuple[float, bool]] = deque()
        self._window_failures = 0
        self._probes_out = 0
        self._probes_ok = 0

    def allow(self) -> bool:
        """Whether a request may go to the upstream now; half-open lets only the probes through."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if self.clock() < self._opened_at + self.config.open_seconds:
                return False
            self._enter("half_open")
        if self._probes_out < self.config.half_open_probes:
            self._probes_out += 1
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next probe may go (0 when one may go now or a probe is out)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self._opened_at + self.config.open_seconds - self.clock())

    def record(self, success: bool, *, epoch: int | None = None) -> None:
        """Count the upstream outcome of a request that allow() let through (in `epoch`, if known)."""
        if epoch is not None and epoch != self.epoch:
            return  # let through before the last transition: it says nothing about this state
        if self.state == "half_open":
            self._probes_out = max(0, self._probes_out - 1)
            if not success:
                self._enter("open")
                return
            self._probes_ok += 1
            if self._probes_ok >= self.config.half_open_probes:
                self._enter("closed")
        elif self.state == "closed":
            self._count(success)

    def abandon(self, *, epoch: int | None = None) -> None:
        """A let-through request ended without reaching the upstream: free its probe place."""
        if self.state == "half_open" and (epoch is None or epoch == self.epoch):
            self._probes_out = max(0, self._probes_out - 1)

    def _count(self, success: bool) -> None:
        now = self.clock()
        window = self._window
        window.append((now, success))
        if not success:
            self._window_failures += 1
        horizon = now - self.config.window_seconds
        while window and window[0][0] <= horizon:
            if not window.popleft()[1]:
                self._window_failures -= 1
        self._consecutive = 0 if success else self._consecutive + 1
        if self._consecutive >= self.config.consecutive_failures:
            self._enter("open", f"{self._consecutive} failures in a row")
        elif (len(window) >= self.config.min_requests
              and self._window_failures / len(window) > self.config.error_rate):
            self._enter("open", f"{self._window_failures} of {len(window)} failed "
                                f"in {self.config.window_seconds:g} s")

    def _enter(self, state: State, why: str = "") -> None:
        previous, self.state = self.state, state
        self.epoch += 1
        self._probes_out = self._probes_ok = 0
        if state == "open":
            self.opened_total += 1
            self._opened_at = self.clock()
        elif state == "closed":
            self._consecutive = self._window_failures = 0
            self._window.clear()
        level = logging.WARNING if state == "open" else logging.INFO
        log.log(level, "circuit breaker %r: %s -> %s%s", self.name, previous, state, f" ({why})" if why else "",
                extra={"upstream": self.name, "state": state})
        if self.on_state_change is not None:
            self.on_state_change(self.name, state)


class CircuitBreakerPolicy(Policy):
    """Answers 503 while its upstream's breaker is open; reports upstream outcomes to it."""

    def __init__(self, config: CircuitBreakerConfig, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    def on_request(self, ctx: RequestContext) -> None:
        breaker = self.breaker
        if breaker.allow():
            ctx.breaker_epoch = breaker.epoch
            return
        wait = breaker.retry_after()
        raise CIRCUIT_OPEN(
            f"upstream {breaker.name!r} is failing; calls are paused"
            + (f" for {wait:.1f} s more" if wait > 0 else " while a probe checks it"),
            headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def on_finish(self, ctx: RequestContext) -> None:
        epoch, ctx.breaker_epoch = ctx.breaker_epoch, None
        if epoch is None:
            return  # refused here
        status = ctx.upstream_status
        if ctx.upstream_failure in ("upstream-unavailable", "upstream-timeout"):
            self.breaker.record(False, epoch=epoch)
        elif status is not None:
            self.breaker.record(status < 500, epoch=epoch)
        else:  # stopped by the gateway (or the client left) before the upstream answered
            self.breaker.abandon(epoch=epoch)
