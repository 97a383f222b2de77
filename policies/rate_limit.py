"""Rate limit and daily quota per consumer and contract major: GCRA, in memory or in Redis.

GCRA: emission interval T = 1/rate, tolerance τ = T·(burst − 1), TAT = theoretical arrival time (unset: now).
Admit iff now ≥ TAT − τ, then TAT ← max(TAT, now) + T; a denial changes nothing and may retry after TAT − τ − now.
After the decision: remaining = ⌊(now + τ + T − TAT) / T⌋, and the bucket is full again at TAT (reset = TAT − now).

The daily quota counts admitted requests per UTC day. Headers (draft-ietf-httpapi-ratelimit-headers,
structured-field lists; `w` = seconds in which the sustained rate earns a full burst, ⌈burst/rate⌉ ≥ 1):

    RateLimit-Policy: "burst";q=20;w=2, "daily";q=1000;w=86400
    RateLimit: "burst";r=19;t=1, "daily";r=999;t=43200        (`t` rounded up, "daily" only with a quota)
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

import msgspec
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from policies.context import Policy, RequestContext
from policies.identity import ANONYMOUS_PLAN
from policies.state.redis_script import RedisScript
from registry.problems import ProblemType

log = logging.getLogger("govgate.rate_limit")

DAY = 86400
EPSILON = 1e-6  # a request a microsecond early is on time: float sums of T must not deny it
BACKEND_ERRORS = (RedisError, OSError, TimeoutError)

RATE_LIMITED = ProblemType(429, "rate-limited", "Too many requests")
QUOTA_EXCEEDED = ProblemType(429, "quota-exceeded", "Daily quota exceeded")
RATE_LIMIT_UNAVAILABLE = ProblemType(503, "rate-limit-unavailable", "Rate limiting is unavailable")


class RateLimitConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a route limits its callers (the numbers come from each caller's plan)."""

    enabled: bool = True
    """Off: requests pass without a limit and without RateLimit headers."""
    per_operation: bool = False
    """Limit per consumer × contract major (False) or per consumer × major × operation (True)."""
    failure_mode: Literal["open", "closed"] = "open"
    """Backend error: admit and log a warning (open), or answer 503 rate-limit-unavailable (closed)."""


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """What a limiter decided for one request, and the state the headers report."""

    allowed: bool
    limit: int
    """The burst: requests that may arrive at once."""
    remaining: int
    """Requests that may still arrive at once after this one."""
    reset_seconds: float
    """Until the bucket is full again."""
    retry_after_seconds: float = 0.0
    """When denied: until a retry can be admitted (0 when admitted)."""
    quota_limit: int | None = None
    quota_remaining: int | None = None
    quota_exceeded: bool = False
    quota_reset_seconds: float = 0.0
    """Until the next UTC midnight, when the daily quota starts again."""


class Limiter(Protocol):
    """A backend: one atomic check-and-count per request."""

    async def acquire(self, key: str, rate: float, burst: int, quota_per_day: int | None) -> Decision: ...

    async def aclose(self) -> None: ...


def _decision(allowed: bool, burst: int, interval: float, full_in: float, retry: float,
              quota: int | None, used: int, over: bool, day_left: float) -> Decision:
    """Assemble a Decision from the GCRA state after the request (`full_in` = TAT − now)."""
    remaining = math.floor((burst * interval - full_in) / interval + EPSILON)
    return Decision(allowed=allowed, limit=burst, remaining=min(burst, max(0, remaining)),
                    reset_seconds=max(0.0, full_in), retry_after_seconds=0.0 if allowed else max(0.0, retry),
                    quota_limit=quota, quota_remaining=None if quota is None else max(0, quota - used),
                    quota_exceeded=over, quota_reset_seconds=day_left)


class MemoryLimiter:
    """GCRA and quotas in this process's memory: exact for one gateway process, shared by none."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 max_entries: int = 100_000) -> None:
        self.clock = clock  # GCRA: any monotonic seconds
        self.wall_clock = wall_clock  # quota: Unix seconds, for the UTC day
        self.max_entries = max_entries
        self.tats: dict[str, float] = {}
        self.used: dict[str, tuple[float, int]] = {}  # key -> (UTC day number, admitted that day)
        self.prune_above = max_entries

    async def acquire(self, key: str, rate: float, burst: int, quota_per_day: int | None) -> Decision:
        return self.decide(key, rate, burst, quota_per_day)

    async def aclose(self) -> None:
        """Nothing to close: the state is this process's memory."""

    def decide(self, key: str, rate: float, burst: int, quota_per_day: int | None) -> Decision:
        """The synchronous core: no await between read and write, so no race in one event loop."""
        now, wall = self.clock(), self.wall_clock()
        interval = 1.0 / rate
        tat = max(self.tats.get(key, now), now)
        retry = tat + interval - burst * interval - now
        day, into_day = divmod(wall, DAY)
        used = 0
        if quota_per_day is not None:
            used_day, used = self.used.get(key, (day, 0))
            used = used if used_day == day else 0
        over = quota_per_day is not None and used >= quota_per_day
        allowed = retry <= EPSILON and not over
        if allowed:
            tat += interval
            self.tats[key] = tat
            if quota_per_day is not None:
                used += 1
                self.used[key] = (day, used)
            if len(self.tats) + len(self.used) > self.prune_above:
                self.prune(now, day)
        elif over:
            retry = max(retry, DAY - into_day)
        return _decision(allowed, burst, interval, tat - now, retry, quota_per_day, used, over, DAY - into_day)

    def prune(self, now: float, day: float) -> None:
        """Forget full buckets and past days; grow the threshold when most entries are live."""
        self.tats = {key: tat for key, tat in self.tats.items() if tat > now}
        self.used = {key: entry for key, entry in self.used.items() if entry[0] == day}
        self.prune_above = max(self.max_entries, 2 * (len(self.tats) + len(self.used)))


# KEYS[1] = GCRA key, KEYS[2] = quota key stem (same hash tag) + the server's UTC yyyymmdd.
# ARGV = rate, burst, quota (0: none). Times are the server's, in seconds. Writes only when admitting.
GCRA_QUOTA_LUA = """
local rate, burst, quota = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local interval = 1 / rate
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
local retry = tat + interval - burst * interval - now
local day = math.floor(tonumber(clock[1]) / 86400)
local day_left = (day + 1) * 86400 - now
-- civil date from days since 1970-01-01 (H. Hinnant's civil_from_days)
local z = day + 719468
local era = math.floor(z / 146097)
local doe = z - era * 146097
local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
local mp = math.floor((5 * doy + 2) / 153)
local month = mp < 10 and mp + 3 or mp - 9
local year = yoe + era * 400 + (month <= 2 and 1 or 0)
local quota_key = KEYS[2] .. string.format('%04d%02d%02d', year, month, doy - math.floor((153 * mp + 2) / 5) + 1)
local used = 0
if quota > 0 then used = tonumber(redis.call('GET', quota_key) or 0) end
local over = quota > 0 and used >= quota
local allowed = retry <= 0.000001 and not over
if allowed then
  tat = tat + interval
  redis.call('SET', KEYS[1], string.format('%.17g', tat), 'PX', math.max(1, math.ceil((tat - now) * 1000)))
  if quota > 0 then
    used = redis.call('INCR', quota_key)
    redis.call('EXPIREAT', quota_key, (day + 1) * 86400 + 3600)
  end
elseif over then
  retry = math.max(retry, day_left)
end
return {allowed and 1 or 0, used, over and 1 or 0, string.format('%.6f', tat - now),
        string.format('%.6f', retry), string.format('%.6f', day_left)}
"""


class RedisLimiter:
    """GCRA and quotas in Redis, one script per request: every gateway process shares the limit."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis  # the caller's to close (await limiter.aclose() closes both)
        self.prefix = prefix
        # its own pipelined connection, where `redis` connects: the per-request call, at a third of the CPU
        self.script = RedisScript(redis, GCRA_QUOTA_LUA, name="govgate-rate-limit")

    @classmethod
    def from_url(cls, url: str, prefix: str = "govgate:rl:", *, timeout: float = 0.25,
                 max_connections: int = 64) -> RedisLimiter:
        """A limiter on its own pool that fails fast (one retry, no backoff) and queues when all are busy."""
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout,
                                               socket_timeout=timeout, socket_connect_timeout=timeout,
                                               retry=Retry(NoBackoff(), 1))
        return cls(Redis.from_pool(pool), prefix)  # the client owns the pool

    async def aclose(self) -> None:
        """Close the script's connection and the client."""
        await self.script.close()
        await self.redis.aclose()

    def keys(self, key: str) -> list[str]:
        """The GCRA key and the quota key stem; the {…} hash tag puts both in one Cluster slot."""
        return [f"{self.prefix}{{{key}}}:gcra", f"{self.prefix}{{{key}}}:quota:"]

    async def acquire(self, key: str, rate: float, burst: int, quota_per_day: int | None) -> Decision:
        reply = await self.script(keys=self.keys(key), args=[repr(float(rate)), burst, quota_per_day or 0])
        allowed, used, over, full_in, retry, day_left = reply
        return _decision(bool(allowed), burst, 1.0 / rate, float(full_in), float(retry), quota_per_day,
                         int(used), bool(over), float(day_left))


# state.backend -> the limiter, given the shared Redis client (None for memory) and its key prefix
LIMITERS: dict[str, Callable[[Any, str], Limiter]] = {
    "memory": lambda redis, prefix: MemoryLimiter(),
    "redis": RedisLimiter,
}


@functools.lru_cache(maxsize=4096)
def policy_header(rate: float, burst: int, quota_per_day: int | None) -> str:
    """RateLimit-Policy for a plan: the burst item, and the daily item when there is a quota."""
    items = [f'"burst";q={burst};w={max(1, math.ceil(burst / rate - EPSILON))}']
    if quota_per_day is not None:
        items.append(f'"daily";q={quota_per_day};w={DAY}')
    return ", ".join(items)


def state_header(decision: Decision) -> str:
    """RateLimit for a decision: what remains of each policy and when it resets (seconds, rounded up)."""
    items = [f'"burst";r={decision.remaining};t={math.ceil(decision.reset_seconds - EPSILON)}']
    if decision.quota_limit is not None:
        items.append(f'"daily";r={decision.quota_remaining};t={math.ceil(decision.quota_reset_seconds)}')
    return ", ".join(items)


class RateLimitPolicy(Policy):
    """Admit a caller within its plan's rate, burst and daily quota; answer 429 beyond them."""

    def __init__(self, config: RateLimitConfig, limiter: Limiter, *, contract: str, major: int,
                 operation_id: str) -> None:
        self.config = config
        self.limiter = limiter
        self.scope = f":{contract}:v{major}" + (f":{operation_id}" if config.per_operation else "")
        self.warned_at = -math.inf  # log throttle, not request state

    async def on_request(self, ctx: RequestContext) -> None:
        consumer = ctx.consumer
        key = (consumer.id if consumer is not None else f"anon:{ctx.client}") + self.scope
        plan = consumer.plan if consumer is not None else ANONYMOUS_PLAN
        try:
            decision = await self.limiter.acquire(key, plan.rate_per_second, plan.burst, plan.quota_per_day)
        except BACKEND_ERRORS as exc:
            if self.config.failure_mode == "closed":
                raise RATE_LIMIT_UNAVAILABLE("The rate limit backend did not answer; retry shortly.",
                                             headers={"Retry-After": "1"}) from exc
            if time.monotonic() - self.warned_at > 10:  # at most one warning per 10 s per route
                self.warned_at = time.monotonic()
                log.warning("rate limit backend failed, admitting without a limit: %r", exc)
            return
        ctx.add_headers.append(("RateLimit-Policy", policy_header(plan.rate_per_second, plan.burst,
                                                                  plan.quota_per_day)))
        ctx.add_headers.append(("RateLimit", state_header(decision)))
        if decision.allowed:
            return
        retry_after = {"Retry-After": str(max(1, math.ceil(decision.retry_after_seconds - EPSILON)))}
        if decision.quota_exceeded:
            ctx.rate_limited = "quota-exceeded"
            raise QUOTA_EXCEEDED(f"The daily quota of {decision.quota_limit} requests is used up "
                                 "until the next UTC day.", headers=retry_after)
        ctx.rate_limited = "rate-limited"
        raise RATE_LIMITED(f"The plan allows {plan.rate_per_second:g} requests per second with a burst "
                           f"of {plan.burst}.", headers=retry_after)
