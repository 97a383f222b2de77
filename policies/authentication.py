"""Authentication: a bearer JWT (verified, cached until it expires) or an API key → the caller.

401 problems carry `WWW-Authenticate: Bearer` with the RFC 6750 error code. Verification
details (pinned algorithms per issuer, JWKS rotation, leeway) live in registry.tokens.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from policies.context import Policy, RequestContext
from policies.identity import Caller, Directory
from registry.problems import Problem, ProblemType
from registry.tokens import JwtVerifier, TokenError, hash_api_key

UNAUTHORIZED = ProblemType(401, "unauthorized", "Unauthorized")


class AuthenticationConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How callers prove who they are."""

    required: bool = True
    """Refuse anonymous calls with 401. Off only for local experiments."""
    api_key_header: str = "X-API-Key"
    """Header carrying an API key; API keys are stored as sha256 hashes."""
    api_keys: bool = True
    """Accept API keys besides bearer tokens."""
    max_token_bytes: Annotated[int, msgspec.Meta(ge=256, le=65536)] = 8192
    """Longer bearer tokens are refused (401) before any parsing; the gateway's verifier enforces it."""


class DirectoryHolder:
    """The current directory; reloads swap it for every route at once."""

    def __init__(self) -> None:
        self.current = Directory()


class AuthenticationPolicy(Policy):
    """Resolves ctx.consumer from the request's credentials."""

    def __init__(self, config: AuthenticationConfig, verifier: JwtVerifier, directory: DirectoryHolder) -> None:
        self.config = config
        self.verifier = verifier
        self.directory = directory
        self.api_key_header = config.api_key_header.lower()

    async def on_request(self, ctx: RequestContext) -> None:
        authorization = ctx.headers.get("authorization")
        if authorization is not None:
            ctx.consumer = await self._bearer(authorization)
            return
        key = ctx.headers.get(self.api_key_header) if self.config.api_keys else None
        if key is not None:
            consumer_id = self.directory.current.api_keys.get(hash_api_key(key))
            ctx.consumer = self.directory.current.caller(consumer_id) if consumer_id else None
            if ctx.consumer is None:
                raise _unauthorized("invalid_token", "unknown API key")
            return
        if self.config.required:
            raise _unauthorized(None, "send a bearer token (Authorization: Bearer ...) or an API key")

    async def _bearer(self, authorization: str) -> Caller:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("invalid_request", "the Authorization header must be 'Bearer <token>'")
        try:
            claims = await self.verifier.verify(token)
        except TokenError as exc:
            raise _unauthorized("invalid_token", str(exc)) from None
        consumer_id = claims.get("client_id") or claims.get("azp") or claims["sub"]
        raw_scopes = claims.get("scope", claims.get("scp", ""))
        scopes = frozenset(raw_scopes.split() if isinstance(raw_scopes, str) else
                           [s for s in raw_scopes if isinstance(s, str)] if isinstance(raw_scopes, list) else [])
        caller = self.directory.current.caller(str(consumer_id), scopes)
        if caller is None:
            raise _unauthorized("invalid_token", "the token's subject is not a registered consumer")
        return caller


def _unauthorized(error: str | None, detail: str) -> Problem:
    # a quoted-string of printable ASCII (RFC 9110 §5.6.4), whatever text a token error carries
    described = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in detail)
    challenge = 'Bearer realm="govgate"' + (f', error="{error}", error_description="{described}"' if error else "")
    return UNAUTHORIZED(detail, headers={"WWW-Authenticate": challenge})
