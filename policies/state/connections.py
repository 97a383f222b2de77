"""The Redis client every policy shares: short timeouts and one retry, so that an outage answers fast."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def redis_client(url: str) -> Redis:
    """A client over a pool that queues when every connection is busy instead of failing."""
    pool = BlockingConnectionPool.from_url(url, max_connections=64, timeout=0.5, socket_timeout=0.5,
                                           socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 1),
                                           health_check_interval=30)
    return Redis.from_pool(pool)
