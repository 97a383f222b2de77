"""The registry's model: contracts and their immutable versions."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

from registry.errors import InvalidRequest

ContractKind = Literal["openapi", "event"]
CompatibilityMode = Literal["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
                            "FULL_TRANSITIVE", "NONE"]
VersionState = Literal["draft", "in_review", "approved", "published", "deprecated", "retired", "rejected", "withdrawn"]

# lower-case dotted / dashed names: they become the first segment of a gateway path
NAME_PATTERN = r"^[a-z][a-z0-9]*(?:[.-][a-z0-9]+)*$"
# first path segments the gateway serves itself: a contract of that name could never be called
RESERVED_NAMES = frozenset({"registry", "events", "healthz", "readyz", "metrics", "oauth2"})
_SEMVER = re.compile(
    r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?$"
)

ContractName = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN, min_length=2, max_length=100)]
Identifier = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


class NewContract(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a caller sends to register a contract."""

    name: ContractName
    kind: ContractKind
    owner: Identifier
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    upstream: Identifier | None = None
    compatibility: CompatibilityMode = "BACKWARD"
    """For event contracts: how a new schema version must relate to the earlier ones."""


class Contract(msgspec.Struct, frozen=True, kw_only=True):
    """A named API or event stream."""

    name: str
    kind: ContractKind
    owner: str
    description: str
    upstream: str | None
    created_at: datetime
    created_by: str
    compatibility: CompatibilityMode = "BACKWARD"


class Version(msgspec.Struct, frozen=True, kw_only=True):
    """One immutable version of a contract's document."""

    contract: str
    version: str
    major: int
    sha256: str
    state: VersionState
    created_at: datetime
    created_by: str
    published_at: datetime | None = None
    base_version: str | None = None
    """The version this one was compared with when it was added."""
    required_bump: str | None = None
    """The smallest semver bump its changes against base_version require."""
    deprecated_at: datetime | None = None
    sunset: date | None = None
    """After this date (RFC 8594) the gateway answers 410."""
    successor: str | None = None
    """The version callers should move to."""


class Deprecation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What an admin sends to deprecate a published version."""

    sunset: date
    successor: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class Retirement(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What an admin sends to retire a deprecated version (force: before its sunset, with a reason)."""

    force: bool = False
    reason: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class NewVersion(msgspec.Struct, frozen=True, kw_only=True):
    """A checked document on its way into the store, with its compatibility report."""

    contract: str
    version: str
    major: int
    document: str
    sha256: str
    base_version: str | None
    required_bump: str | None
    changes: str | None  # the report as JSON


class SemVer(msgspec.Struct, frozen=True, order=True):
    """A parsed semantic version; orders by precedence (a pre-release sorts first)."""

    major: int
    minor: int
    patch: int
    is_release: bool
    prerelease: str

    @classmethod
    def parse(cls, text: str) -> SemVer:
        """Parse `MAJOR.MINOR.PATCH[-PRERELEASE]`; InvalidRequest otherwise."""
        match = _SEMVER.match(text) if isinstance(text, str) else None
        if not match:
            raise InvalidRequest(f"version {text!r} is not a semantic version (MAJOR.MINOR.PATCH)")
        major, minor, patch, pre = match.groups()
        return cls(int(major), int(minor), int(patch), pre is None, pre or "")



class Plan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a consumer may do: its rate, burst, daily quota and priority class."""

    name: Identifier
    rate_per_second: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] = 10.0
    """Sustained requests per second per contract (GCRA emission rate)."""
    burst: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 20
    """Requests that may arrive at once above the sustained rate."""
    quota_per_day: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Requests per UTC day per contract; None for no quota."""
    priority: Identifier = "normal"
    """Priority class (see backend_protection.classes): lower classes are shed first."""


ScopeName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9:._-]{1,64}$")]


class Subscription(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A consumer may call one major version of one contract."""

    contract: ContractName
    major: Annotated[int, msgspec.Meta(ge=0, le=999_999)]


class NewConsumer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What an admin sends to register a channel."""

    id: Identifier
    """The client id, e.g. channel-checkout."""
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    plan: Identifier = "default"
    scopes: Annotated[list[ScopeName], msgspec.Meta(max_length=100)] = []
    """The most a token issued to this consumer may carry."""


class Consumer(msgspec.Struct, frozen=True, kw_only=True):
    """A channel's identity with its plan, scopes and subscriptions."""

    id: str
    name: str
    plan: str
    scopes: list[str]
    subscriptions: list[Subscription]
    created_at: datetime
    created_by: str


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Who called which operation of a contract major, how often, first and last."""

    consumer: str
    contract: str
    major: int
    operation: str
    count: int
    errors: int
    first_seen: datetime
    last_seen: datetime


ChangeState = Literal["open", "approved", "rejected", "withdrawn", "published"]


class Vote(msgspec.Struct, frozen=True, kw_only=True):
    """A board member's decision on a change request."""

    voter: str
    decision: Literal["approve", "reject"]
    comment: str
    at: datetime


class AffectedConsumer(msgspec.Struct, frozen=True, kw_only=True):
    """A consumer that really calls an operation the change breaks (from gateway traffic)."""

    consumer: str
    operation: str
    calls: int
    last_seen: datetime


class ChangeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The proposal of a version: what it changes, what it breaks, who must approve it."""

    id: str
    contract: str
    version: str
    base_version: str | None
    state: ChangeState
    proposer: str
    proposer_team: str | None
    required_approvals: int
    required_bump: str
    findings: dict[str, int]
    """Counts of the diff's changes by level (ERR, WARN, INFO)."""
    changes: Any
    """The diff report (`govgate diff --format json`), or None for a first version."""
    lint: Any
    affected_consumers: list[AffectedConsumer]
    votes: list[Vote]
    created_at: datetime
    updated_at: datetime
    row_version: int


class VoteRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a reviewer sends."""

    comment: Annotated[str, msgspec.Meta(max_length=4000)] = ""


class NewChange(msgspec.Struct, frozen=True, kw_only=True):
    """A change request on its way into the store with its version."""

    id: str
    proposer: str
    proposer_team: str | None
    required_approvals: int
    required_bump: str
    findings: dict[str, int]
    changes: Any
    lint: Any
    affected_consumers: list[AffectedConsumer]


class NewVerification(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The outcome of `govgate verify` against one environment, as a pipeline reports it."""

    environment: Identifier
    passed: bool
    base_url: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    summary: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    report: Any = None
    """The verification report (`govgate verify --format json`)."""


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded verification of a contract version against a provider environment."""

    contract: str
    version: str
    environment: str
    passed: bool
    base_url: str
    summary: str
    recorded_at: datetime
    recorded_by: str
