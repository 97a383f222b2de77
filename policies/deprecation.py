"""Deprecation: a deprecated version answers with `Deprecation` (RFC 9745), `Sunset` (RFC 8594)
and a `Link` to its successor; after the sunset date, or once retired, it answers 410."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, time as day_start
from email.utils import format_datetime

import msgspec

from policies.context import Policy, RequestContext
from registry.problems import ProblemType

VERSION_GONE = ProblemType(410, "version-gone", "Gone")


class DeprecationConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How deprecated versions are announced."""

    enabled: bool = True
    """Send the headers and refuse calls after the sunset."""


class DeprecationPolicy(Policy):
    """Headers for a deprecated version; 410 for a retired or sunset one."""

    def __init__(self, config: DeprecationConfig, *, contract: str, major: int, state: str,
                 deprecated_at: datetime | None, sunset: date | None, successor: str | None) -> None:
        self.contract = contract
        self.major = major
        self.retired = state == "retired"
        self.sunset_at = datetime.combine(sunset, day_start(0), tzinfo=UTC).timestamp() if sunset else None
        headers = []
        if deprecated_at is not None:
            headers.append(("Deprecation", f"@{int(deprecated_at.timestamp())}"))
        if sunset is not None:
            headers.append(("Sunset", format_datetime(datetime.combine(sunset, day_start(0), tzinfo=UTC), usegmt=True)))
        if successor is not None:
            headers.append(("Link", f'</{contract}/v{successor.split(".")[0]}>; rel="successor-version"'))
        self.headers = headers if config.enabled else []
        self.successor = successor

    def on_request(self, ctx: RequestContext) -> None:
        if not self.headers and not self.retired:
            return
        ctx.add_headers.extend(self.headers)
        if self.retired or (self.sunset_at is not None and time.time() >= self.sunset_at):
            moved = f"; use {self.successor}" if self.successor else ""
            raise VERSION_GONE(f"{self.contract} v{self.major} is {'retired' if self.retired else 'past its sunset'}"
                                 f"{moved}")
