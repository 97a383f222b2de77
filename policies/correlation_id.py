"""Correlation id: keep a sane client-sent id, otherwise start a new one."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

import msgspec



class CorrelationIdConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the gateway names and checks the correlation header."""

    header: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")] = "X-Correlation-ID"
    """Request and response header that carries the id (the client's, the upstream's and the answer's)."""
    max_length: Annotated[int, msgspec.Meta(ge=8, le=1024)] = 128
    """A longer client-sent id is replaced, not truncated."""


class CorrelationIdPolicy:
    """Every request leaves with an id: the client's if it is a sane token, else a UUID.

    Not in a route's chain: the gateway assigns the id before routing, so even a 404 carries it."""

    def __init__(self, config: CorrelationIdConfig) -> None:
        self.header = config.header.lower()
        # visible ASCII without separators that break logs or headers
        self.sane = re.compile(r"[A-Za-z0-9._:@/+=-]{1,%d}" % config.max_length)

    def assign(self, headers: dict[str, str]) -> str:
        """The id to use for a request with these (lower-cased) headers."""
        sent = headers.get(self.header)
        if sent is not None and self.sane.fullmatch(sent):
            return sent
        return str(uuid.uuid4())
