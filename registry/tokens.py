"""JWTs: govgate's own signing key, token issuing, and verification against pinned issuers.

Verification pins the algorithms per issuer (so `alg: none` and HS256-signed-with-the-RSA-
public-key are refused), requires exp, iss, aud and sub, allows a small leeway on exp/nbf,
fetches external keys from the issuer's JWKS URL (cached; refetched at most every
`refresh_seconds` when an unknown `kid` appears, which is how key rotation shows up), and
caches verified tokens until they expire so a signature is checked once per token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any, Literal

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

Algorithm = Literal["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
MAX_TOKEN_BYTES = 8192


class TokenError(Exception):
    """A token that must not be accepted; the message says why (safe to show the caller)."""


class IssuerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An external token issuer (an OIDC provider) the gateway trusts."""

    issuer: str
    """The exact `iss` claim."""
    audience: str
    """The `aud` the token must carry."""
    jwks_url: str
    """Where the issuer publishes its public keys."""
    algorithms: tuple[Algorithm, ...] = ("RS256",)
    """Pinned algorithms: a token signed with any other is refused."""
    leeway_seconds: Annotated[int, msgspec.Meta(ge=0, le=300)] = 30


class SigningKey:
    """govgate's own Ed25519 key: signs the tokens it issues, published as a JWKS."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self.private_key = private_key
        public = private_key.public_key()
        self.public_jwk = {**json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(public)), "use": "sig", "alg": "EdDSA"}
        thumbprint = json.dumps({k: self.public_jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
        # RFC 7638 thumbprint as the key id: the same key always has the same kid
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(thumbprint.encode()).digest()).rstrip(b"=").decode()
        self.public_jwk["kid"] = self.kid

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """The key in `path` (PEM, PKCS#8), created with mode 0600 when absent."""
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"{path} does not hold an Ed25519 private key")
            return cls(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        return cls(key)

    def jwks(self) -> dict[str, Any]:
        """The public key set to publish."""
        return {"keys": [self.public_jwk]}

    def issue(self, *, issuer: str, audience: str, subject: str, ttl_seconds: int, **claims: Any) -> str:
        """A signed token for `subject`."""
        now = int(time.time())
        payload = {"iss": issuer, "aud": audience, "sub": subject, "iat": now, "nbf": now,
                   "exp": now + ttl_seconds, "jti": uuid.uuid4().hex, **claims}
        return jwt.encode(payload, self.private_key, algorithm="EdDSA", headers={"kid": self.kid})


class _Issuer:
    """One trusted issuer with its keys."""

    def __init__(self, config: IssuerConfig, keys: dict[str, Any] | None = None) -> None:
        self.config = config
        self.keys: dict[str, Any] = keys or {}
        self.static = keys is not None  # govgate's own key never needs fetching
        self.fetched_at = 0.0
        self.lock = asyncio.Lock()


class JwtVerifier:
    """Verifies bearer tokens from govgate itself and from configured external issuers."""

    def __init__(self, issuers: list[IssuerConfig], *, own: tuple[SigningKey, IssuerConfig] | None = None,
                 cache_size: int = 10_000, refresh_seconds: float = 30.0,
                 max_token_bytes: int = MAX_TOKEN_BYTES) -> None:
        self.max_token_bytes = max_token_bytes  # larger tokens are refused before any parsing
        self._issuers = {c.issuer: _Issuer(c) for c in issuers}
        if own is not None:
            key, config = own
            self._issuers[config.issuer] = _Issuer(config, {key.kid: key.private_key.public_key()})
        self._cache: OrderedDict[str, tuple[dict[str, Any], float]] = OrderedDict()
        self._cache_size = cache_size
        self._refresh_seconds = refresh_seconds

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; TokenError otherwise."""
        cached = self._cache.get(token)
        now = time.time()
        if cached is not None and cached[1] > now:
            self._cache.move_to_end(token)
            return cached[0]
        if len(token) > self.max_token_bytes:
            raise TokenError("token too large")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        claimed = unverified.get("iss")
        issuer = self._issuers.get(claimed) if isinstance(claimed, str) else None
        if issuer is None:
            raise TokenError("untrusted issuer")
        algorithm = header.get("alg")
        if algorithm not in issuer.config.algorithms:
            raise TokenError("the token's algorithm is not allowed for this issuer")  # not echoed: caller's text
        key = await self._key(issuer, header.get("kid"))
        try:
            claims = jwt.decode(
                token, key, algorithms=list(issuer.config.algorithms), audience=issuer.config.audience,
                issuer=issuer.config.issuer, leeway=issuer.config.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise TokenError("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("wrong issuer") from None
        except jwt.PyJWTError:
            raise TokenError("invalid token") from None
        self._cache[token] = (claims, float(claims["exp"]) + issuer.config.leeway_seconds)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    async def _key(self, issuer: _Issuer, kid: Any) -> Any:
        if not isinstance(kid, str) or len(kid) > 256:
            kid = ""
        if kid in issuer.keys:
            return issuer.keys[kid]
        if issuer.static:
            raise TokenError("unknown signing key")
        async with issuer.lock:  # one fetch at a time; a rotated key shows up as an unknown kid
            if kid not in issuer.keys and time.monotonic() - issuer.fetched_at >= self._refresh_seconds:
                issuer.keys = await _fetch_jwks(issuer.config.jwks_url)
                issuer.fetched_at = time.monotonic()
        if kid not in issuer.keys:
            if not kid and len(issuer.keys) == 1:
                return next(iter(issuer.keys.values()))
            raise TokenError("unknown signing key")
        return issuer.keys[kid]


async def _fetch_jwks(url: str) -> dict[str, Any]:
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            async with session.get(url) as response:
                document = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        raise TokenError("the issuer's keys cannot be fetched") from None
    keys = {}
    for jwk in document.get("keys", []) if isinstance(document, dict) else []:
        try:
            keys[str(jwk.get("kid", ""))] = jwt.PyJWK(jwk).key
        except (jwt.PyJWTError, ValueError, TypeError):
            continue  # an unusable key in the set does not spoil the others
    return keys


def hash_secret(secret: str) -> str:
    """A slow salted hash (scrypt) for client secrets, which people may choose."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_secret(secret: str, stored: str) -> bool:
    """Whether `secret` matches a hash_secret() value (constant time)."""
    import hmac

    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(candidate.hex(), digest)


def hash_api_key(key: str) -> str:
    """A fast hash for API keys: they are random and long, so sha256 is enough and lookups stay O(1)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_secret(prefix: str) -> str:
    """A high-entropy secret with a recognisable prefix (gg_key_..., gg_secret_...)."""
    return f"{prefix}{base64.urlsafe_b64encode(os.urandom(24)).rstrip(b'=').decode()}"
