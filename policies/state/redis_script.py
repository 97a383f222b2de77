"""One Lua script, called per request, over a single pipelined connection of its own.

The rate limit calls Redis on every governed request. Through redis-py that costs ~150 µs
of CPU per call here (pool checkout, a task per send for the socket timeout, command
packing); this connection writes a pre-packed EVALSHA and matches replies to callers in
order (Redis answers a connection's commands in the order they came), ~40 µs. hiredis,
redis-py's own optional parser, reads the replies. Concurrent callers share the connection,
which is also how Redis is fastest to serve them.

It connects where the given redis-py client connects (host, port or socket, TLS, user,
password, database), reconnects on the next call after a failure, and answers NOSCRIPT
(after SCRIPT FLUSH or a failover) by sending the script once with EVAL. Failures are
redis-py's exceptions, so callers handle one family.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class RedisScript(asyncio.Protocol):
    """`await script(keys=[...], args=[...])`: EVALSHA of `source`, pipelined, within the client's socket timeout."""

    def __init__(self, redis: Redis, source: str, *, name: str) -> None:
        self.name = name  # the connection's CLIENT SETNAME, so operators can tell it apart in CLIENT LIST
        self.options = redis.connection_pool.connection_kwargs
        self.ssl = redis.connection_pool.connection_class is SSLConnection
        self.unix = redis.connection_pool.connection_class is UnixDomainSocketConnection
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest()
        self.timeout = self.options.get("socket_timeout") or 1.0  # the client's own fail-fast budget
        self.transport: asyncio.Transport | None = None
        self.ready = False  # connected, authenticated and on the right database: callers may send
        self.connecting: asyncio.Future[None] | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.outbox: list[bytes] = []  # commands not yet written
        self.reader = hiredis.Reader()

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self._command(b"EVALSHA", self.sha, len(keys), *keys, *args)
                if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
                    reply = await self._command(b"EVAL", self.source, len(keys), *keys, *args)
        except TimeoutError:
            raise RedisTimeoutError(f"no answer from Redis within {self.timeout} s") from None
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
        return reply

    async def close(self) -> None:
        """Close the connection; a later call opens a new one."""
        self._drop()

    def _drop(self) -> None:
        self.ready = False
        if self.transport is not None:
            self.transport.close()

    async def _command(self, *parts: Any) -> Any:
        if not self.ready:
            await self._connect()
        return await self._send(parts)

    def _send(self, parts: tuple[Any, ...]) -> asyncio.Future[Any]:
        if self.transport is None:  # lost between connecting and sending
            raise RedisConnectionError("connection to Redis lost")
        encoded = [p if isinstance(p, bytes) else str(p).encode() for p in parts]
        self.outbox.append(b"*%d\r\n%s" % (len(encoded), b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded)))
        loop = asyncio.get_running_loop()
        if len(self.outbox) == 1:  # the commands of one loop iteration leave in one write (one syscall)
            loop.call_soon(self._flush)
        waiter = loop.create_future()
        self.waiting.append(waiter)
        return waiter

    def _flush(self) -> None:
        outbox, self.outbox = self.outbox, []
        if self.transport is not None:  # else connection_lost has failed their callers
            self.transport.write(b"".join(outbox))

    async def _connect(self) -> None:
        if self.connecting is None:  # one connection attempt, however many callers wait for it
            self.connecting = asyncio.ensure_future(self._open())
        connecting = self.connecting
        try:
            await asyncio.shield(connecting)
        finally:
            if connecting.done() and self.connecting is connecting:
                self.connecting = None

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        options = self.options
        try:
            if self.unix:
                await loop.create_unix_connection(lambda: self, options["path"])
            else:
                await loop.create_connection(lambda: self, options.get("host", "localhost"),
                                             options.get("port", 6379), ssl=self._ssl_context())
        except OSError as exc:
            raise RedisConnectionError(f"cannot connect to Redis: {exc}") from None
        password, username, db = options.get("password"), options.get("username"), options.get("db") or 0
        setup = []
        if password is not None:
            setup.append(self._send((b"AUTH", username, password) if username else (b"AUTH", password)))
        if db:
            setup.append(self._send((b"SELECT", db)))
        setup.append(self._send((b"CLIENT", b"SETNAME", self.name)))
        for reply in await asyncio.gather(*setup):
            if isinstance(reply, hiredis.ReplyError):
                self._drop()
                raise RedisConnectionError(f"Redis refused the connection's setup: {reply}")
        self.ready = self.transport is not None  # only now: a command sent before SELECT would hit database 0

    def _ssl_context(self) -> Any:
        if not self.ssl:
            return None
        import ssl

        context = ssl.create_default_context(cafile=self.options.get("ssl_ca_certs"))
        if self.options.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return context

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.reader = hiredis.Reader()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while self.waiting:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self._drop()
                self._fail(RedisConnectionError(f"unreadable reply from Redis: {exc}"))
                return
            if reply is False:
                return
            waiter = self.waiting.popleft()
            if not waiter.done():  # a caller that timed out has gone; its reply keeps the order
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport, self.ready = None, False
        self.outbox = []  # their callers fail below; a new connection must not carry them
        self._fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def _fail(self, exc: Exception) -> None:
        waiting, self.waiting = self.waiting, deque()
        for waiter in waiting:
            if not waiter.done():
                waiter.set_exception(exc)
