"""Who may do what on the registry API: bearer JWTs with roles, checked by route guards.

Roles: `integrator` registers contracts and proposes versions, `board` reviews, `admin`
publishes and manages consumers and plans. Tokens come from govgate itself (an admin
issues them; `govgate token issue` bootstraps the first) or from a trusted OIDC issuer.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from registry.errors import Forbidden, RegistryError
from registry.tokens import JwtVerifier, TokenError

ROLES = ("integrator", "board", "admin")
REGISTRY_AUDIENCE = "govgate-registry"
VERIFIER = "registry_verifier"
"""The route option carrying the token verifier of the registry's callers (set by api.registry_router)."""


class Unauthorized(RegistryError):
    status = 401
    slug = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": f'Bearer realm="govgate-registry", error="invalid_token", '
                                            f'error_description="{detail}"'}


class Identity(msgspec.Struct, frozen=True):
    """The person or pipeline behind a registry call."""

    subject: str
    roles: frozenset[str]
    team: str | None = None


async def identity(connection: ASGIConnection[Any, Any, Any, Any]) -> Identity:
    """The caller of a registry request, verified once per request (401 when there is none)."""
    known = connection.scope.get("state", {}).get("identity")
    if known is not None:
        return known
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send a bearer token with a registry role")
    verifier: JwtVerifier = connection.route_handler.opt[VERIFIER]  # audience: the registry
    try:
        claims = await verifier.verify(token.strip())
    except TokenError as exc:
        raise Unauthorized(str(exc)) from None
    roles = claims.get("roles")
    found = Identity(subject=str(claims["sub"]), roles=frozenset(r for r in roles or [] if r in ROLES)
                     if isinstance(roles, list) else frozenset(), team=claims.get("team"))
    connection.scope.setdefault("state", {})["identity"] = found
    return found


def requires(*roles: str) -> Any:
    """A guard that lets through callers holding any of `roles`."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        caller = await identity(connection)
        if not caller.roles & set(roles):
            raise Forbidden(f"this needs the role {' or '.join(roles)}; you have {sorted(caller.roles) or 'none'}")

    return guard


READERS = requires(*ROLES)
INTEGRATORS = requires("integrator", "admin")
ADMINS = requires("admin")
BOARD = requires("board")
AUDITORS = requires("board", "admin")
