"""The rate limiter's pipelined script connection, on real Redis: order, reconnects, database, timeouts."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from policies.state.redis_script import RedisScript

ECHO = "redis.call('RPUSH', KEYS[1], ARGV[1]); return ARGV[1]"


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_concurrent_callers_each_get_their_own_reply_in_one_connection(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url)
        name = "govgate-test-" + redis_prefix.split(":")[1]
        script = RedisScript(redis, ECHO, name=name)
        key = redis_prefix + "order"
        try:
            replies = await asyncio.gather(*(script(keys=[key], args=[n]) for n in range(300)))
            assert replies == [str(n).encode() for n in range(300)]
            assert await redis.lrange(key, 0, -1) == replies  # sent in the order called
            assert len([c for c in await redis.client_list() if c["name"] == name]) == 1  # one connection, named
        finally:
            await script.close()
            await redis.aclose()

    run(scenario())


def test_a_killed_connection_fails_the_call_and_the_next_one_reconnects(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url)
        script = RedisScript(redis, ECHO, name="govgate-test")
        key = redis_prefix + "reconnect"
        try:
            assert await script(keys=[key], args=["a"]) == b"a"
            host, port = script.transport.get_extra_info("sockname")[:2]
            assert await redis.execute_command("CLIENT", "KILL", "ADDR", f"{host}:{port}")
            await asyncio.sleep(0.05)
            assert await script(keys=[key], args=["b"]) == b"b"  # a new connection, found when needed
            assert await redis.lrange(key, 0, -1) == [b"a", b"b"]
        finally:
            await script.close()
            await redis.aclose()

    run(scenario())


def test_the_database_of_the_client_url_is_used(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        parts = urlsplit(redis_url)
        database = 7 if parts.path.strip("/") != "7" else 8
        other = Redis.from_url(parts._replace(path=f"/{database}").geturl())
        home = Redis.from_url(redis_url)
        script = RedisScript(other, ECHO, name="govgate-test")
        key = redis_prefix + "db"
        try:
            calls = []
            for n in range(100):  # callers arriving while the connection is being set up, one per loop turn
                calls.append(asyncio.ensure_future(script(keys=[key], args=[n])))
                await asyncio.sleep(0)
            await asyncio.gather(*calls)
            assert await other.llen(key) == 100 and await home.exists(key) == 0  # none before SELECT
        finally:
            await other.delete(key)
            await script.close()
            await other.aclose()
            await home.aclose()

    run(scenario())


def test_script_errors_are_redis_errors_and_the_connection_stays_usable(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url)
        broken = RedisScript(redis, "return redis.call('INCR', KEYS[1])", name="govgate-test")
        key = redis_prefix + "text"
        await redis.set(key, "not a number")
        try:
            with pytest.raises(ResponseError, match="not an integer"):
                await broken(keys=[key], args=[])
            await redis.set(key, "41")
            assert await broken(keys=[key], args=[]) == 42
        finally:
            await broken.close()
            await redis.aclose()

    run(scenario())


def test_nothing_listening_and_a_silent_server_fail_fast() -> None:
    async def scenario() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        refused = RedisScript(Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.3), ECHO, name="govgate-test")
        with pytest.raises(RedisConnectionError):
            await refused(keys=["k"], args=["v"])

        silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)  # accepts, never answers
        port = silent.sockets[0].getsockname()[1]
        script = RedisScript(Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.3), ECHO, name="govgate-test")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RedisTimeoutError):
            await script(keys=["k"], args=["v"])
        assert loop.time() - started < 1.0
        await script.close()
        silent.close()

    run(scenario())


def test_a_caller_that_timed_out_does_not_shift_the_replies_of_the_next(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url, socket_timeout=0.2)
        slow = RedisScript(redis, "local t = redis.call('TIME'); local stop = t[1] * 1e6 + t[2] + 400000 "
                                  "while true do local n = redis.call('TIME'); "
                                  "if n[1] * 1e6 + n[2] > stop then break end end; return ARGV[1]", name="govgate-test")
        try:
            with pytest.raises(RedisTimeoutError):
                await slow(keys=[redis_prefix + "slow"], args=["late"])  # Redis busy for 0.4 s
            slow.timeout = 2.0
            assert await slow(keys=[redis_prefix + "slow"], args=["next"]) == b"next"  # not "late"
        finally:
            await slow.close()
            await redis.aclose()

    run(scenario())
