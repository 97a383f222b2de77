"""Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): a retried POST or PATCH runs once.

The first request with a key takes an in-flight lock and goes upstream; its response is kept
for `ttl_seconds` and replayed (`Idempotent-Replayed: true`) to the same key and request. The
key with another request is 422, and 409 while the first still runs. A failed first request
(a problem, 5xx, 408/425/429) releases the lock so a retry goes ahead. No store: 503, never
an un-deduplicated request. Records are scoped by consumer, contract, major and operation.
Redis layout, one hash per key, hash-tagged per consumer:

    {prefix}idempotency:{<consumer>}:<contract>:v<major>:<operation id>:<client key>
        fingerprint   sha256 of method, operation path, query string and body
        owner         random token of the request holding the in-flight lock (lock_seconds)
        response      msgspec msgpack of StoredResponse, once completed (ttl_seconds)
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

import msgspec
import redis

from policies.context import Policy, RequestContext
from registry.problems import Problem

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("govgate.idempotency")

BACKEND_ERRORS = (redis.RedisError, OSError)  # OSError: ConnectionError and TimeoutError included
RETRYABLE = frozenset({408, 425, 429})  # the client is told to try again: storing would pin the failure
_BARE_KEY = re.compile(r"[\x21\x23-\x7e][\x21-\x7e]*")  # a leading quote means an sf-string
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')  # RFC 8941 sString

# slug → status, title (as in the draft's examples), detail, headers
PROBLEMS: dict[str, tuple[int, str, str, dict[str, str]]] = {
    "idempotency-key-missing": (400, "Idempotency-Key is missing", "this operation requires the {header} header", {}),
    "idempotency-key-invalid": (400, "Idempotency-Key is invalid",
                                "{header} must be 1 to {limit} visible ASCII characters, bare or quoted", {}),
    "idempotency-key-reused": (422, "Idempotency-Key is already used",
                               "the key was used with another request body", {}),
    "idempotency-request-in-flight": (409, "A request is outstanding for this Idempotency-Key",
                                      "the first request with this key is still being processed", {"Retry-After": "1"}),
    "idempotency-unavailable": (503, "Idempotency store unavailable",
                                "the key could not be checked, so the request was not forwarded ({error})",
                                {"Retry-After": "5"}),
}
_REFUSED = {"mismatch": "idempotency-key-reused", "in_flight": "idempotency-request-in-flight"}


def problem(slug: str, **args: object) -> Problem:
    """The problem `slug`, its detail filled in from `args`."""
    status, title, detail, headers = PROBLEMS[slug]
    return Problem(detail.format(**args), headers=dict(headers), status=status, slug=slug, title=title)


class IdempotencyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which requests are de-duplicated and how long their responses are kept."""

    enabled: bool = True
    """Off: the header is ignored and every request goes upstream."""
    methods: frozenset[str] = frozenset({"POST", "PATCH"})
    """Methods the key applies to; the others are idempotent by definition."""
    header: str = "Idempotency-Key"
    """Request header that carries the client's key."""
    ttl_seconds: Annotated[float, msgspec.Meta(gt=0)] = 24 * 3600.0
    """How long a completed response is replayed."""
    lock_seconds: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    """How long an in-flight marker lives when the gateway dies mid-request."""
    max_key_length: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 255
    """Longer keys are refused with 400."""
    max_body_bytes: Annotated[int, msgspec.Meta(ge=0)] = 1024 * 1024
    """Larger responses are not stored: the lock is released and a retry goes upstream again."""

    def applies_to(self, method: str) -> bool:
        """Whether an operation of this method has the policy in its chain."""
        return self.enabled and method.upper() in {m.upper() for m in self.methods}
    required: bool = False
    """A request with one of `methods` and no key is refused with 400."""


class StoredResponse(msgspec.Struct, frozen=True, array_like=True):
    """An upstream answer as it is replayed."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Begun(msgspec.Struct, frozen=True):
    """What begin() found: started (`token` owns the lock), replay, mismatch or in_flight."""

    outcome: Literal["started", "replay", "mismatch", "in_flight"]
    token: str = ""
    response: StoredResponse | None = None


class IdempotencyStore(Protocol):
    """Where records live; each call is atomic per key, whatever runs concurrently."""

    async def begin(self, key: str, fingerprint: str, *, lock_seconds: float) -> Begun:
        """Take the in-flight lock of a new key, or say what the key holds already."""

    async def complete(self, key: str, token: str, fingerprint: str, response: StoredResponse, *,
                       ttl_seconds: float) -> bool:
        """Store the response unless another request has taken the key since; whether it was stored."""

    async def release(self, key: str, token: str) -> None:
        """Drop the in-flight marker if `token` still owns it, so that a retry may go ahead."""


def _found(fingerprint: str, stored_fingerprint: str, response: StoredResponse | None) -> Begun:
    if stored_fingerprint != fingerprint:
        return Begun("mismatch")
    return Begun("in_flight") if response is None else Begun("replay", response=response)


class _Record(msgspec.Struct):
    fingerprint: str
    owner: str  # "" once completed
    response: StoredResponse | None
    expires: float


class MemoryStore:
    """One process only: a dict; expired records go when met, and in a sweep once a minute."""

    def __init__(self, client: Any = None, *, prefix: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        del client, prefix  # accepted so that BACKENDS[backend](client, prefix=...) builds either store
        self.clock = clock
        self.records: dict[str, _Record] = {}
        self._next_sweep = 0.0

    def _live(self, key: str) -> _Record | None:
        now = self.clock()
        if now >= self._next_sweep:
            self.records = {k: r for k, r in self.records.items() if r.expires > now}
            self._next_sweep = now + 60.0
        record = self.records.get(key)
        if record is not None and record.expires <= now:
            del self.records[key]
            return None
        return record

    async def begin(self, key: str, fingerprint: str, *, lock_seconds: float) -> Begun:
        record = self._live(key)
        if record is not None:
            return _found(fingerprint, record.fingerprint, record.response)
        token = secrets.token_hex(16)
        self.records[key] = _Record(fingerprint, token, None, self.clock() + lock_seconds)
        return Begun("started", token=token)

    async def complete(self, key: str, token: str, fingerprint: str, response: StoredResponse, *,
                       ttl_seconds: float) -> bool:
        record = self._live(key)
        if record is not None and record.owner != token:
            return False
        self.records[key] = _Record(fingerprint, "", response, self.clock() + ttl_seconds)
        return True

    async def release(self, key: str, token: str) -> None:
        record = self._live(key)
        if record is not None and record.owner == token:
            del self.records[key]


# Lua runs atomically in Redis: of two identical requests at once, exactly one finds the key absent.
_BEGIN = """
local found = redis.call('HMGET', KEYS[1], 'fingerprint', 'response')
if found[1] then return found end
redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'owner', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return false
"""
_COMPLETE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'fingerprint', ARGV[2], 'response', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
_RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(StoredResponse)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisStore:
    """Shared by every gateway instance on one Redis: one atomic script, one round trip per call."""

    def __init__(self, client: Redis, *, prefix: str = "govgate:") -> None:
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("RedisStore needs a client with decode_responses=False: responses are binary")
        self.prefix = prefix + "idempotency:"
        self._begin = client.register_script(_BEGIN)
        self._complete = client.register_script(_COMPLETE)
        self._release = client.register_script(_RELEASE)

    async def begin(self, key: str, fingerprint: str, *, lock_seconds: float) -> Begun:
        token = secrets.token_hex(16)
        found = await self._begin(keys=[self.prefix + key], args=[fingerprint, token, _ms(lock_seconds)])
        if found is None:
            return Begun("started", token=token)
        stored_fingerprint, response = found
        return _found(fingerprint, stored_fingerprint.decode(), None if response is None else _DECODER.decode(response))

    async def complete(self, key: str, token: str, fingerprint: str, response: StoredResponse, *,
                       ttl_seconds: float) -> bool:
        args: list[str | bytes | int] = [token, fingerprint, _ENCODER.encode(response), _ms(ttl_seconds)]
        return bool(await self._complete(keys=[self.prefix + key], args=args))

    async def release(self, key: str, token: str) -> None:
        await self._release(keys=[self.prefix + key], args=[token])


BACKENDS: dict[str, Callable[..., IdempotencyStore]] = {"memory": MemoryStore, "redis": RedisStore}


def fingerprint_of(ctx: RequestContext) -> str:
    """sha256 over method, operation path, query string and body: what makes two requests the same."""
    digest = hashlib.sha256()
    for part in (ctx.method.upper(), ctx.path, ctx.query_string):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(ctx.body)
    return digest.hexdigest()


class Claim(msgspec.Struct):
    """This request holds the in-flight lock of `key` until it stores or releases it."""

    key: str
    token: str
    fingerprint: str
    settled: bool = False


class IdempotencyPolicy(Policy):
    """Answers a retried POST or PATCH with the response of its first attempt."""

    reads_body = True

    def __init__(self, config: IdempotencyConfig, store: IdempotencyStore, *, contract: str, major: int,
                 operation_id: str) -> None:
        self.config = config
        self.store = store
        self.header = config.header.lower()
        self.scope = f"{contract}:v{major}:{operation_id}"

    def parse(self, sent: str) -> str:
        """The client's key: an RFC 8941 string ("..."), or the bare token many clients send."""
        value = sent.strip(" \t")
        quoted = _SF_STRING.fullmatch(value)
        key = re.sub(r'\\(["\\])', r"\1", quoted[1]) if quoted else value if _BARE_KEY.fullmatch(value) else ""
        if not 0 < len(key) <= self.config.max_key_length:
            raise problem("idempotency-key-invalid", header=self.config.header, limit=self.config.max_key_length)
        return key

    async def on_request(self, ctx: RequestContext) -> None:
        sent = ctx.headers.get(self.header)
        if sent is None:
            if self.config.required:
                raise problem("idempotency-key-missing", header=self.config.header)
            return
        consumer = ctx.consumer.id if ctx.consumer is not None else f"anon:{ctx.client}"
        key = f"{{{consumer}}}:{self.scope}:{self.parse(sent)}"
        fingerprint = fingerprint_of(ctx)
        try:
            begun = await self.store.begin(key, fingerprint, lock_seconds=self.config.lock_seconds)
        except BACKEND_ERRORS as exc:
            raise problem("idempotency-unavailable", error=type(exc).__name__) from None
        if begun.outcome == "started":
            ctx.idempotency_claim = Claim(key, begun.token, fingerprint)
        elif begun.response is not None:  # replay
            stored = begun.response
            ctx.answer(stored.status, [*stored.headers, ("Idempotent-Replayed", "true")], stored.body)
        else:
            raise problem(_REFUSED[begun.outcome])

    async def on_response(self, ctx: RequestContext) -> None:
        claim = ctx.idempotency_claim
        status = ctx.response_status
        if (claim is None or claim.settled or status >= 500 or status in RETRYABLE
                or len(ctx.response_body) > self.config.max_body_bytes):
            return  # a replay, or nothing to keep: on_finish releases the lock
        claim.settled = True
        # framing and correlation headers are gone already (gateway/upstream.py drops them)
        response = StoredResponse(status, ctx.response_headers, ctx.response_body)
        try:
            await self.store.complete(claim.key, claim.token, claim.fingerprint, response,
                                      ttl_seconds=self.config.ttl_seconds)
        except BACKEND_ERRORS as exc:
            # the upstream has acted: answer the client, and leave the marker to expire rather
            # than free the key for an immediate re-run
            log.warning("idempotency record not stored: %r", exc, extra={"correlation_id": ctx.correlation_id})

    async def on_finish(self, ctx: RequestContext) -> None:
        claim = ctx.idempotency_claim
        if claim is None or claim.settled:
            return
        claim.settled = True
        try:
            await self.store.release(claim.key, claim.token)
        except BACKEND_ERRORS as exc:  # the marker expires after lock_seconds
            log.warning("idempotency lock not released: %r", exc, extra={"correlation_id": ctx.correlation_id})
