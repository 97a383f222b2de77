"""The OAuth2 client-credentials token endpoint (RFC 6749 §4.4) and govgate's JWKS.

A channel authenticates with its client id and secret (HTTP Basic, or form fields) and gets
a short-lived EdDSA-signed JWT for the gateway. Errors use RFC 6749 §5.2's JSON (`error`,
`error_description`), which OAuth clients read, plus the problem-details members.

authlib is not used: its server side needs a framework integration (request/response
adapters, a client model, a grant registry) that would be more code than this one grant.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any
from urllib.parse import parse_qs, unquote

from litestar import Request, Response, get, post

from gateway.services import Services
from registry.problems import TYPE_BASE
from registry.service import Registry
from registry.tokens import check_secret

MAX_FORM_BYTES = 16 * 1024


@post("/oauth2/token", include_in_schema=False, status_code=200)
async def token(request: Request[Any, Any, Any], services: Services, registry: Registry) -> Response[dict[str, Any]]:
    """Issue an access token for the client credentials grant."""
    body = await _read_limited(request)
    if body is None:
        return _error(413, "invalid_request", "the request body is too large", request)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return _error(400, "invalid_request", "send application/x-www-form-urlencoded", request)
    try:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), strict_parsing=False).items()}
    except UnicodeDecodeError:
        return _error(400, "invalid_request", "the form is not UTF-8", request)
    if form.get("grant_type") != "client_credentials":
        return _error(400, "unsupported_grant_type", "only client_credentials is supported", request)
    client_id, secret = _credentials(request.headers.get("authorization", ""), form)
    if not client_id or not secret or len(client_id) > 64 or len(secret) > 256:
        return _error(401, "invalid_client", "client authentication failed", request)
    # scrypt is deliberately slow: keep it off the event loop
    consumer = await _check(registry, client_id, secret)
    if consumer is None:
        return _error(401, "invalid_client", "client authentication failed", request)
    requested = form.get("scope", "").split()
    if any(scope not in consumer.scopes for scope in requested):
        return _error(400, "invalid_scope", "a requested scope is not granted to this client", request)
    scopes = requested or consumer.scopes
    config = services.config.tokens
    access_token = services.signing_key.issue(
        issuer=config.issuer, audience=config.gateway_audience, subject=consumer.id,
        ttl_seconds=config.access_token_seconds, scope=" ".join(scopes), client_id=consumer.id)
    return Response({"access_token": access_token, "token_type": "Bearer", "expires_in": config.access_token_seconds,
                     "scope": " ".join(scopes)}, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@get(["/oauth2/jwks.json", "/.well-known/jwks.json"], include_in_schema=False, sync_to_thread=False)
def jwks(services: Services) -> dict[str, Any]:
    """govgate's public signing keys."""
    return services.signing_key.jwks()


async def _check(registry: Registry, client_id: str, secret: str) -> Any:
    stored = await registry.store.consumer_secret_hash(client_id)
    if stored is None:
        return None
    if not await asyncio.to_thread(check_secret, secret, stored):
        return None
    return await registry.store.get_consumer(client_id)


def _credentials(authorization: str, form: dict[str, str]) -> tuple[str | None, str | None]:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() == "basic" and encoded:
        try:
            client_id, _, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        return unquote(client_id), unquote(secret)  # RFC 6749 §2.3.1 form-encodes both
    return form.get("client_id"), form.get("client_secret")


async def _read_limited(request: Request[Any, Any, Any]) -> bytes | None:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    return bytes(body)


def _error(status: int, error: str, description: str, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    correlation_id = request.scope.get("state", {}).get("correlation_id", "")
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="govgate"'
    return Response({"error": error, "error_description": description, "type": TYPE_BASE + "oauth-" + error,
                     "title": "Token request refused", "status": status, "detail": description,
                     "correlationId": correlation_id}, status_code=status, headers=headers)
