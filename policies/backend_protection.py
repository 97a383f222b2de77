"""Backend protection: a bounded number of requests in flight per upstream, shed by priority.

One `UpstreamGuard` per upstream counts the requests in flight over every route that calls
it. When the upstream is full, low classes (`shed_from` and below) get 503 at once, so a
flood of batch traffic costs the ERP nothing; higher classes wait briefly in per-class FIFO
queues, and each freed slot goes to the highest class waiting.

    ctx.protection_slot   "held" → "released", or "shed" / "timed-out"
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable
from typing import Annotated

import msgspec

from policies.context import Policy, RequestContext
from policies.identity import ANONYMOUS_PLAN
from registry.model import Identifier
from registry.problems import Problem, ProblemType

UPSTREAM_SATURATED = ProblemType(503, "upstream-saturated", "Upstream saturated")


class BackendProtectionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How much one upstream serves at once and who goes first when it is full."""

    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 64
    """Requests the upstream serves at once, counted over every route that calls it."""
    classes: tuple[Identifier, ...] = ("checkout", "normal", "marketplace-sync", "batch")
    """Priority classes, highest first; a plan priority not listed counts as the last one."""
    shed_from: Identifier = "marketplace-sync"
    """When the upstream is full, this class and every lower one get 503 at once."""
    max_wait_ms: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 250
    """How long a higher class waits for a free slot before it gets 503."""
    reserved: dict[Identifier, Annotated[int, msgspec.Meta(ge=1)]] = {}
    """Slots only a class and the ones above it may use: {"checkout": 8} keeps the last 8 from lower classes."""
    retry_after_seconds: Annotated[int, msgspec.Meta(ge=0, le=86_400)] = 1
    """Retry-After of the 503."""

    def __post_init__(self) -> None:
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be a non-empty list of distinct names")
        if self.shed_from not in self.classes:
            raise ValueError(f"shed_from {self.shed_from!r} is not one of the classes")
        unknown = sorted(set(self.reserved) - set(self.classes))
        if unknown:
            raise ValueError(f"reserved names classes that are not listed: {unknown}")
        if sum(self.reserved.values()) >= self.max_in_flight:
            raise ValueError("reserved slots must leave at least one slot for the lowest class")


class UpstreamGuard:
    """Priority-aware admission for one upstream, shared by every route that calls it."""

    def __init__(self, config: BackendProtectionConfig, name: str = "") -> None:
        self.name = name
        self.config = config
        self.classes = config.classes
        self._ranks = {name: rank for rank, name in enumerate(config.classes)}
        # a class may not use the slots reserved by the classes above it
        self._limits = tuple(config.max_in_flight - sum(config.reserved.get(c, 0) for c in config.classes[:rank])
                             for rank in range(len(config.classes)))
        self._queues: tuple[deque[asyncio.Future[bool]], ...] = tuple(deque() for _ in config.classes)
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now."""
        return self._in_flight

    @property
    def waiting(self) -> dict[str, int]:
        """Requests waiting for a slot, per class."""
        return {name: len(queue) for name, queue in zip(self.classes, self._queues)}

    def rank(self, priority: str) -> int:
        """0 for the highest class; an unlisted priority ranks with the lowest."""
        return self._ranks.get(priority, len(self.classes) - 1)

    def try_acquire(self, rank: int) -> bool:
        """Take a slot if one is free for this class and nobody of its class or above waits."""
        if self._in_flight < self._limits[rank] and not any(self._queues[r] for r in range(rank + 1)):
            self._in_flight += 1
            return True
        return False

    async def acquire(self, rank: int, timeout: float) -> bool:
        """Take a slot, waiting up to `timeout` seconds in this class's queue; False if none came."""
        if self.try_acquire(rank):
            return True
        if timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        ticket: asyncio.Future[bool] = loop.create_future()
        queue = self._queues[rank]
        queue.append(ticket)
        expiry = loop.call_later(timeout, _expire, queue, ticket)
        try:
            return await ticket
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled() and ticket.result():
                self.release()  # granted just as the caller went away: hand it on
            elif ticket in queue:
                queue.remove(ticket)
            raise
        finally:
            expiry.cancel()

    def release(self) -> None:
        """Give a slot back; the highest class waiting gets it, first come first served."""
        if self._in_flight <= 0:
            raise RuntimeError(f"upstream guard {self.name!r}: release without acquire")
        self._in_flight -= 1
        for rank, queue in enumerate(self._queues):
            # limits fall with rank: once one class cannot go, no lower class can
            while queue and self._in_flight < self._limits[rank]:
                ticket = queue.popleft()
                if not ticket.done():
                    self._in_flight += 1
                    ticket.set_result(True)


def _expire(queue: deque[asyncio.Future[bool]], ticket: asyncio.Future[bool]) -> None:
    if not ticket.done():
        queue.remove(ticket)
        ticket.set_result(False)


class BackendProtectionPolicy(Policy):
    """Holds a slot of its upstream's guard for the whole upstream call, or answers 503."""

    def __init__(self, config: BackendProtectionConfig, guard: UpstreamGuard) -> None:
        shape = (config.max_in_flight, config.classes, config.reserved)
        if shape != (guard.config.max_in_flight, guard.classes, guard.config.reserved):
            raise ValueError(f"upstream guard {guard.name!r} was built with other limits or classes")
        self.guard = guard
        self.shed_rank = guard.rank(config.shed_from)
        self.max_wait = config.max_wait_ms / 1000
        self.max_wait_ms = config.max_wait_ms
        self.retry_after = str(config.retry_after_seconds)

    def on_request(self, ctx: RequestContext) -> Awaitable[None] | None:
        priority = ctx.consumer.plan.priority if ctx.consumer is not None else ANONYMOUS_PLAN.priority
        rank = self.guard.rank(priority)
        if self.guard.try_acquire(rank):
            ctx.protection_slot = "held"
            return None
        if rank >= self.shed_rank:
            ctx.protection_slot = "shed"
            raise self._saturated(priority, rank, "is shed first")
        return self._wait(ctx, priority, rank)  # only waiting requests pay for a coroutine

    async def _wait(self, ctx: RequestContext, priority: str, rank: int) -> None:
        if await self.guard.acquire(rank, self.max_wait):
            ctx.protection_slot = "held"
            return
        ctx.protection_slot = "timed-out"
        raise self._saturated(priority, rank, f"found no free slot within {self.max_wait_ms} ms")

    def on_finish(self, ctx: RequestContext) -> None:
        if ctx.protection_slot == "held":
            ctx.protection_slot = "released"
            self.guard.release()

    def _saturated(self, priority: str, rank: int, what: str) -> Problem:
        listed = self.guard.classes[rank]
        label = repr(priority) if priority == listed else f"{priority!r} (counted as {listed!r})"
        return UPSTREAM_SATURATED(
            f"upstream {self.guard.name!r} is saturated; priority class {label} {what}",
            headers={"Retry-After": self.retry_after})
