"""Idempotency-Key: the first request is stored, retries replay it, conflicts are refused.

Every policy test runs on both backends; the Redis ones on the real server. The upstream is
simulated the way the gateway calls it: between on_request and on_response, unless answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from policies.context import RequestContext
from registry.problems import Problem, ProblemType
from policies.identity import Caller
from policies.idempotency import (
    BACKENDS,
    IdempotencyConfig,
    IdempotencyPolicy,
    IdempotencyStore,
    MemoryStore,
    RedisStore,
    StoredResponse,
)
from tests.conftest import free_port

BODY = b'{"sku":"SKU-1","quantity":2}'
# as the upstream client leaves an answer: framing and correlation headers already dropped
CREATED = (201, [("Content-Type", "application/json"), ("Location", "/orders/7")], b'{"id":7}')
SCOPE = {"contract": "erp.sales-orders", "major": 1, "operation_id": "createOrder"}
Backend = Callable[[], AbstractAsyncContextManager[IdempotencyStore]]


class Upstream:
    """Stands in for the upstream: counts the calls, answers with one fixed response (or raises)."""

    def __init__(self, status: int = CREATED[0], headers: list[tuple[str, str]] = CREATED[1],
                 body: bytes = CREATED[2], fail: Problem | None = None) -> None:
        self.status, self.headers, self.body, self.fail = status, headers, body, fail
        self.calls = 0

    def __call__(self, ctx: RequestContext) -> None:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        ctx.response_status, ctx.response_headers, ctx.response_body = self.status, list(self.headers), self.body


def request(*, key: str | None = "order-1", body: bytes = BODY, method: str = "POST", consumer: str | None = "checkout",
            query: str = "", path: str = "/orders", client: str = "10.0.0.9") -> RequestContext:
    ctx = RequestContext(method=method, path=path, raw_path=path, query_string=query,
                         headers={} if key is None else {"idempotency-key": key},
                         client=client, scheme="http", host="gateway.test")
    ctx.body = body
    ctx.consumer = None if consumer is None else Caller(id=consumer)
    return ctx


async def through(policy: IdempotencyPolicy, ctx: RequestContext, upstream: Upstream) -> RequestContext:
    """Run one request as the gateway does: on_request, upstream unless answered, on_response, on_finish."""
    try:
        await policy.on_request(ctx)
        if not ctx.answered:
            upstream(ctx)
        await policy.on_response(ctx)
    except Problem as problem:
        ctx.problem, ctx.response_status = problem, problem.status
    finally:
        await policy.on_finish(ctx)
    return ctx


def slug(ctx: RequestContext) -> str | None:
    return ctx.problem.slug if ctx.problem else None


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Builds a fresh store of each kind inside the test's event loop."""
    if request.param == "memory":
        @asynccontextmanager
        async def memory() -> AsyncIterator[IdempotencyStore]:
            yield BACKENDS["memory"]()
        return memory
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")

    @asynccontextmanager
    async def real() -> AsyncIterator[IdempotencyStore]:
        client = Redis.from_url(url)
        try:
            yield BACKENDS["redis"](client, prefix=prefix)
        finally:
            await client.aclose()
    return real


def play(backend: Backend, scenario: Callable[[IdempotencyStore], Awaitable[None]]) -> None:
    async def main() -> None:
        async with backend() as store:
            await scenario(store)
    asyncio.run(main())


def policy_on(store: IdempotencyStore, **config: Any) -> IdempotencyPolicy:
    return IdempotencyPolicy(IdempotencyConfig(**config), store, **SCOPE)


def test_first_request_is_stored_and_the_retry_replays_it(backend: Backend) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        policy, upstream = policy_on(store), Upstream()
        first = await through(policy, request(), upstream)
        assert (first.problem, first.answered, first.response_status, upstream.calls) == (None, False, 201, 1)
        retry = await through(policy, request(), upstream)
        assert upstream.calls == 1 and retry.answered and retry.problem is None
        assert retry.response_status == 201 and retry.response_body == b'{"id":7}'
        assert retry.response_headers == [("Content-Type", "application/json"), ("Location", "/orders/7"),
                                          ("Idempotent-Replayed", "true")]  # content-length is the gateway's
        assert ("Idempotent-Replayed", "true") not in first.response_headers
    play(backend, scenario)


def test_quoted_and_bare_forms_of_a_key_are_the_same_key(backend: Backend) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        policy, upstream = policy_on(store), Upstream()
        await through(policy, request(key='"a \\"quoted\\" key"'), upstream)  # RFC 8941 sf-string
        assert (await through(policy, request(key='  "a \\"quoted\\" key"'), upstream)).answered
        await through(policy, request(key="8e03978e-40d5-43e8-bc93-6894a57f9324"), upstream)
        assert (await through(policy, request(key='"8e03978e-40d5-43e8-bc93-6894a57f9324"'), upstream)).answered
        assert upstream.calls == 2
    play(backend, scenario)


@pytest.mark.parametrize("change", [{"body": b'{"sku":"SKU-2","quantity":2}'}, {"query": "dryRun=true"},
                                    {"path": "/orders/other"}])
def test_the_same_key_with_another_request_is_422(backend: Backend, change: dict[str, Any]) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        policy, upstream = policy_on(store), Upstream()
        await through(policy, request(), upstream)
        reused = await through(policy, request(**change), upstream)
        assert (reused.response_status, slug(reused), upstream.calls) == (422, "idempotency-key-reused", 1)
        assert reused.problem and reused.problem.detail == "the key was used with another request body"
        assert (await through(policy, request(), upstream)).answered  # the record itself is untouched
    play(backend, scenario)


def test_a_duplicate_while_the_first_is_in_flight_is_409(backend: Backend) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        policy, upstream = policy_on(store), Upstream()
        first = request()
        await policy.on_request(first)  # the first is now "at the upstream"
        duplicate = await through(policy, request(), upstream)
        assert (duplicate.response_status, slug(duplicate), upstream.calls) == (409, "idempotency-request-in-flight", 0)
        assert duplicate.problem and duplicate.problem.headers == {"Retry-After": "1"}
        other_body = await through(policy, request(body=b"{}"), upstream)
        assert slug(other_body) == "idempotency-key-reused"  # a different request is wrong in any case
        upstream(first)
        await policy.on_response(first)
        await policy.on_finish(first)
        assert (await through(policy, request(), upstream)).answered and upstream.calls == 1
    play(backend, scenario)


def test_concurrent_identical_requests_only_one_proceeds(backend: Backend) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        policy = policy_on(store)

        async def one() -> RequestContext:
            ctx = request()
            try:
                await policy.on_request(ctx)
            except Problem as problem:
                ctx.problem = problem
            return ctx
        done = await asyncio.gather(*(one() for _ in range(50)))
        assert sorted(slug(ctx) or "started" for ctx in done) == ["idempotency-request-in-flight"] * 49 + ["started"]
    play(backend, scenario)


@pytest.mark.parametrize("failure", [{"status": 500}, {"status": 503}, {"status": 429},
                                     {"fail": ProblemType(504, "upstream-timeout", "Upstream timed out")("x")}],
                         ids=["500", "503", "429", "problem"])
def test_a_failed_first_request_releases_the_key_so_a_retry_proceeds(backend: Backend, failure: dict) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        policy, upstream, failing = policy_on(store), Upstream(), Upstream(**failure)
        failed = await through(policy, request(), failing)
        assert failing.calls == 1 and not failed.answered
        retry = await through(policy, request(), upstream)
        assert (retry.problem, retry.answered, retry.response_status, upstream.calls) == (None, False, 201, 1)
        assert (await through(policy, request(), upstream)).answered
    play(backend, scenario)


def test_a_4xx_from_the_upstream_is_kept_like_any_other_answer(backend: Backend) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        policy, upstream = policy_on(store), Upstream(status=400, body=b'{"error":"out of stock"}')
        await through(policy, request(), upstream)
        retry = await through(policy, request(), upstream)
        assert (retry.answered, retry.response_status, retry.response_body, upstream.calls) == \
            (True, 400, b'{"error":"out of stock"}', 1)
    play(backend, scenario)


def test_responses_above_max_body_bytes_are_not_stored(backend: Backend) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        policy, upstream = policy_on(store, max_body_bytes=4), Upstream()
        await through(policy, request(), upstream)
        assert not (await through(policy, request(), upstream)).answered and upstream.calls == 2
    play(backend, scenario)


def test_keys_are_scoped_per_consumer_and_operation(backend: Backend) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        policy, upstream = policy_on(store), Upstream()
        await through(policy, request(consumer="checkout"), upstream)
        b = await through(policy, request(consumer="marketplace", body=b'{"other":1}'), upstream)
        assert (b.problem, b.answered, upstream.calls) == (None, False, 2)  # neither 422 nor a replay of A's
        await through(policy, request(consumer=None, client="10.0.0.1"), upstream)  # anonymous: by address
        assert not (await through(policy, request(consumer=None, client="10.0.0.2"), upstream)).answered
        other_operation = IdempotencyPolicy(IdempotencyConfig(), store, contract="erp.sales-orders", major=2,
                                            operation_id="createOrder")
        assert not (await through(other_operation, request(), upstream)).answered
        assert upstream.calls == 5
        assert (await through(policy, request(consumer="marketplace", body=b'{"other":1}'), upstream)).answered
    play(backend, scenario)


@pytest.mark.parametrize("key", ["", "  ", "a" * 256, "has space", "café", "tab\tkey", '"unterminated', '""',
                                 '"a", "b"', "a, b", '"bad \\x escape"', '"key";param=1'])
def test_malformed_keys_are_400(key: str) -> None:
    async def scenario(store: IdempotencyStore) -> None:
        policy, upstream = policy_on(store), Upstream()
        ctx = await through(policy, request(key=key), upstream)
        assert (ctx.response_status, slug(ctx), upstream.calls) == (400, "idempotency-key-invalid", 0)
    asyncio.run(scenario(MemoryStore()))


def test_the_longest_key_allowed_is_accepted() -> None:
    async def scenario(store: IdempotencyStore) -> None:
        ctx = await through(policy_on(store), request(key="k" * 255), Upstream())
        assert ctx.problem is None and ctx.response_status == 201
    asyncio.run(scenario(MemoryStore()))


def test_a_request_without_a_key_passes_through() -> None:
    async def scenario(store: IdempotencyStore) -> None:
        policy, upstream = policy_on(store), Upstream(status=200)
        for _ in range(2):
            ctx = await through(policy, request(key=None), upstream)
            assert ctx.problem is None and not ctx.answered and ctx.idempotency_claim is None
        assert upstream.calls == 2 and store.records == {}  # type: ignore[attr-defined]
    asyncio.run(scenario(MemoryStore()))


def test_the_policy_applies_to_its_methods_only_and_not_when_disabled() -> None:
    """The chain builder leaves the policy out of the other operations' chains (tests/gateway/test_chain.py)."""
    assert IdempotencyConfig().applies_to("POST") and IdempotencyConfig().applies_to("patch")
    assert not any(IdempotencyConfig().applies_to(method) for method in ("GET", "PUT", "DELETE", "HEAD"))
    assert IdempotencyConfig(methods=frozenset({"post"})).applies_to("POST")
    assert not IdempotencyConfig(methods=frozenset({"post"})).applies_to("PATCH")
    assert not IdempotencyConfig(enabled=False).applies_to("POST")


def test_a_required_key_that_is_missing_is_400() -> None:
    async def scenario(store: IdempotencyStore) -> None:
        policy, upstream = policy_on(store, required=True, methods=frozenset({"post"})), Upstream()
        missing = await through(policy, request(key=None), upstream)
        assert (missing.response_status, slug(missing), upstream.calls) == (400, "idempotency-key-missing", 0)
    asyncio.run(scenario(MemoryStore()))


def test_config_is_declarative_and_strict() -> None:
    config = msgspec.convert({"methods": ["POST"], "ttl_seconds": 3600, "required": True}, IdempotencyConfig)
    assert config.methods == frozenset({"POST"}) and config.lock_seconds == 60 and config.max_key_length == 255
    assert IdempotencyConfig().ttl_seconds == 86400 and IdempotencyConfig().max_body_bytes == 1024 * 1024
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"ttl": 5}, IdempotencyConfig)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"ttl_seconds": 0}, IdempotencyConfig)
    assert set(BACKENDS) == {"memory", "redis"}


def test_memory_records_expire_after_their_ttl_and_lock() -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])

    async def scenario() -> None:
        policy, upstream = policy_on(store, ttl_seconds=10, lock_seconds=2), Upstream()
        await through(policy, request(), upstream)
        now[0] += 9.9
        assert (await through(policy, request(), upstream)).answered
        now[0] += 0.2
        assert not (await through(policy, request(), upstream)).answered and upstream.calls == 2
        stuck = request(key="order-2")
        await policy.on_request(stuck)  # the gateway dies here: no response, no finish
        assert slug(await through(policy, request(key="order-2"), upstream)) == "idempotency-request-in-flight"
        now[0] += 2.1
        assert not (await through(policy, request(key="order-2"), upstream)).problem and upstream.calls == 3
        now[0] += 100  # the periodic sweep drops what nobody asks for again
        await store.begin("unrelated", "f", lock_seconds=1)
        assert list(store.records) == ["unrelated"]
    asyncio.run(scenario())


def test_a_store_failure_after_the_upstream_still_answers() -> None:
    class Failing(MemoryStore):
        async def complete(self, *args: Any, **kwargs: Any) -> bool:
            raise ConnectionError("store went away")

    async def scenario() -> None:
        store = Failing()
        policy, upstream = policy_on(store), Upstream()
        ctx = await through(policy, request(), upstream)
        assert (ctx.problem, ctx.response_status) == (None, 201)
        # the marker stays until lock_seconds: an immediate retry must not run the order twice
        assert slug(await through(policy, request(), upstream)) == "idempotency-request-in-flight"
    asyncio.run(scenario())


# --- Redis specifics, on the real server ---------------------------------------------------------


def test_redis_key_layout_and_ttl(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        client = Redis.from_url(redis_url)
        try:
            policy, upstream = policy_on(RedisStore(client, prefix=redis_prefix), ttl_seconds=0.3), Upstream()
            await through(policy, request(), upstream)
            key = f"{redis_prefix}idempotency:{{checkout}}:erp.sales-orders:v1:createOrder:order-1"
            record = await client.hgetall(key)
            assert set(record) == {b"fingerprint", b"response"}  # the owner token went with the lock
            assert msgspec.msgpack.decode(record[b"response"], type=StoredResponse).status == 201
            assert 0 < await client.pttl(key) <= 300
            assert (await through(policy, request(), upstream)).answered
            await asyncio.sleep(0.4)
            assert await client.exists(key) == 0
            assert not (await through(policy, request(), upstream)).answered and upstream.calls == 2
        finally:
            await client.aclose()
    asyncio.run(scenario())


def test_redis_lock_expires_and_a_stale_owner_cannot_touch_the_new_one(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        client = Redis.from_url(redis_url)
        try:
            store = RedisStore(client, prefix=redis_prefix)
            stale = await store.begin("k", "fp", lock_seconds=0.2)
            assert stale.outcome == "started"
            assert (await store.begin("k", "fp", lock_seconds=0.2)).outcome == "in_flight"
            await asyncio.sleep(0.3)  # the first owner's gateway died: its marker expired
            fresh = await store.begin("k", "fp", lock_seconds=30)
            assert fresh.outcome == "started" and fresh.token != stale.token
            await store.release("k", stale.token)
            response = StoredResponse(201, [], b"stale")
            assert not await store.complete("k", stale.token, "fp", response, ttl_seconds=30)
            assert (await store.begin("k", "fp", lock_seconds=30)).outcome == "in_flight"
            assert await store.complete("k", fresh.token, "fp", StoredResponse(201, [], b"fresh"), ttl_seconds=30)
            replay = await store.begin("k", "fp", lock_seconds=30)
            assert replay.outcome == "replay" and replay.response and replay.response.body == b"fresh"
            assert (await store.begin("k", "other", lock_seconds=30)).outcome == "mismatch"
        finally:
            await client.aclose()
    asyncio.run(scenario())


def test_50_concurrent_begins_on_redis_start_exactly_one(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        clients = [Redis.from_url(redis_url) for _ in range(5)]  # five gateway instances
        try:
            stores = [RedisStore(client, prefix=redis_prefix) for client in clients]
            outcomes = await asyncio.gather(*(stores[i % 5].begin("{c}:same", "fp", lock_seconds=30)
                                              for i in range(50)))
            assert sorted(o.outcome for o in outcomes) == ["in_flight"] * 49 + ["started"]
        finally:
            for client in clients:
                await client.aclose()
    asyncio.run(scenario())


def test_redis_unreachable_is_503_and_never_reaches_the_upstream() -> None:
    async def scenario() -> None:
        client = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, socket_timeout=1,
                       retry=Retry(NoBackoff(), 1))  # the default retries with backoff for ~4 s
        try:
            policy, upstream = policy_on(RedisStore(client, prefix="govgate-test:unreachable:")), Upstream()
            ctx = await through(policy, request(), upstream)
            assert (ctx.response_status, slug(ctx), upstream.calls) == (503, "idempotency-unavailable", 0)
            assert ctx.problem and "Retry-After" in ctx.problem.headers
        finally:
            await client.aclose()
    asyncio.run(scenario())


def test_redis_store_refuses_a_decoding_client(redis_url: str) -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        RedisStore(Redis.from_url(redis_url, decode_responses=True))
