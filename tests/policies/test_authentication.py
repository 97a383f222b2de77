"""Token verification and authentication, including the attacks the issue names."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from policies.authentication import AuthenticationConfig, AuthenticationPolicy, DirectoryHolder
from policies.context import RequestContext
from registry.problems import Problem
from policies.identity import Caller, Directory
from registry.tokens import IssuerConfig, JwtVerifier, SigningKey, TokenError, hash_api_key
from tests.conftest import free_port, spawn, stop, wait_http

ISSUER = "https://id.retail.example"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(key: rsa.RSAPrivateKey, kid: str) -> dict:
    return {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": kid, "use": "sig"}


def claims(**overrides: object) -> dict:
    now = int(time.time())
    return {"iss": ISSUER, "aud": "govgate-gateway", "sub": "channel-web", "iat": now, "exp": now + 300,
            "scope": "orders:read", **overrides}


@pytest.fixture(scope="module")
def jwks_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real HTTP server (its own process) publishing a JWKS file the tests rewrite."""
    folder = tmp_path_factory.mktemp("jwks")
    (folder / "jwks.json").write_text(json.dumps({"keys": []}))
    port = free_port()
    process = spawn(["-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)])
    try:
        wait_http(f"http://127.0.0.1:{port}/jwks.json", process=process)
        yield f"http://127.0.0.1:{port}/jwks.json", folder / "jwks.json"
    finally:
        stop(process)


def external(url: str, **changes: object) -> JwtVerifier:
    config = IssuerConfig(issuer=ISSUER, audience="govgate-gateway", jwks_url=url, algorithms=("RS256",),
                          leeway_seconds=5)
    return JwtVerifier([config], refresh_seconds=0.0, **changes)  # type: ignore[arg-type]


def verify(verifier: JwtVerifier, token: str) -> dict:
    return asyncio.run(verifier.verify(token))


def test_external_issuer_keys_are_fetched_and_rotated(jwks_server: tuple[str, Path]) -> None:
    url, path = jwks_server
    first, second = rsa_key(), rsa_key()
    path.write_text(json.dumps({"keys": [jwk_of(first, "k1")]}))
    verifier = external(url)
    assert verify(verifier, jwt.encode(claims(), first, "RS256", headers={"kid": "k1"}))["sub"] == "channel-web"
    path.write_text(json.dumps({"keys": [jwk_of(first, "k1"), jwk_of(second, "k2")]}))  # the issuer rotates
    assert verify(verifier, jwt.encode(claims(), second, "RS256", headers={"kid": "k2"}))["sub"] == "channel-web"
    with pytest.raises(TokenError, match="unknown signing key"):
        verify(verifier, jwt.encode(claims(), rsa_key(), "RS256", headers={"kid": "k3"}))


@pytest.mark.parametrize(("attack", "reason"), [
    ("alg-none", "algorithm is not allowed"),
    ("hs256-with-public-key", "algorithm is not allowed"),
    ("expired", "expired"),
    ("not-yet-valid", "not yet valid"),
    ("wrong-audience", "audience"),
    ("wrong-issuer", "untrusted issuer"),
    ("no-exp", "invalid"),
    ("kid-path-trick", "unknown signing key"),
    ("oversized", "too large"),
    ("tampered", "invalid token"),
    ("garbage", "malformed"),
])
def test_jwt_attacks_are_refused(jwks_server: tuple[str, Path], attack: str, reason: str) -> None:
    url, path = jwks_server
    key = rsa_key()
    path.write_text(json.dumps({"keys": [jwk_of(key, "k1")]}))
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    good = jwt.encode(claims(), key, "RS256", headers={"kid": "k1"})
    header, payload, signature = good.split(".")
    b64 = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()  # noqa: E731
    tokens = {
        "alg-none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        # the classic confusion: sign HS256 with the RSA public key as the HMAC secret
        "hs256-with-public-key": f"{b64({'alg': 'HS256', 'kid': 'k1'})}.{payload}." + base64.urlsafe_b64encode(
            __import__("hmac").new(public_pem, f"{b64({'alg': 'HS256', 'kid': 'k1'})}.{payload}".encode(),
                                   "sha256").digest()).rstrip(b"=").decode(),
        "expired": jwt.encode(claims(exp=int(time.time()) - 60), key, "RS256", headers={"kid": "k1"}),
        "not-yet-valid": jwt.encode(claims(nbf=int(time.time()) + 600), key, "RS256", headers={"kid": "k1"}),
        "wrong-audience": jwt.encode(claims(aud="someone-else"), key, "RS256", headers={"kid": "k1"}),
        "wrong-issuer": jwt.encode(claims(iss="https://evil.example"), key, "RS256", headers={"kid": "k1"}),
        "no-exp": jwt.encode({k: v for k, v in claims().items() if k != "exp"}, key, "RS256", headers={"kid": "k1"}),
        "kid-path-trick": jwt.encode(claims(), rsa_key(), "RS256", headers={"kid": "../../../../dev/null"}),
        "oversized": jwt.encode(claims(padding="x" * 9000), key, "RS256", headers={"kid": "k1"}),
        "tampered": f"{header}.{b64(claims(sub='admin'))}.{signature}",
        "garbage": "not-a-token",
    }
    with pytest.raises(TokenError, match=reason):
        verify(external(url), tokens[attack])


def test_verified_tokens_are_cached_until_they_expire(tmp_path: Path) -> None:
    key = SigningKey.load_or_create(tmp_path / "key.pem")
    own = IssuerConfig(issuer="govgate", audience="govgate-gateway", jwks_url="", algorithms=("EdDSA",))
    verifier = JwtVerifier([], own=(key, own))
    token = key.issue(issuer="govgate", audience="govgate-gateway", subject="c", ttl_seconds=60)
    verify(verifier, token)
    started = time.perf_counter()
    for _ in range(2000):
        verify(verifier, token)
    per_call = (time.perf_counter() - started) / 2000
    assert per_call < 0.0005, per_call  # a dict lookup, not a signature check (~100 µs)
    assert (tmp_path / "key.pem").stat().st_mode & 0o777 == 0o600


def test_the_configured_token_size_limit_is_the_one_enforced(tmp_path: Path) -> None:
    key = SigningKey.load_or_create(tmp_path / "key.pem")
    own = IssuerConfig(issuer="govgate", audience="govgate-gateway", jwks_url="", algorithms=("EdDSA",))
    large = key.issue(issuer="govgate", audience="govgate-gateway", subject="c", ttl_seconds=60, note="x" * 10_000)
    with pytest.raises(TokenError, match="too large"):
        verify(JwtVerifier([], own=(key, own)), large)  # the default: 8 KB
    assert verify(JwtVerifier([], own=(key, own), max_token_bytes=16_384), large)["sub"] == "c"


def context(headers: dict[str, str]) -> RequestContext:
    return RequestContext(method="GET", path="/orders", raw_path="/orders", query_string="", headers=headers,
                          client="127.0.0.1", scheme="http", host="gw")


def test_policy_resolves_bearer_and_api_key_callers(tmp_path: Path) -> None:
    key = SigningKey.load_or_create(tmp_path / "key.pem")
    own = IssuerConfig(issuer="govgate", audience="govgate-gateway", jwks_url="", algorithms=("EdDSA",))
    holder = DirectoryHolder()
    holder.current = Directory({"pos-1": Caller(id="pos-1", scopes=frozenset({"orders:read", "orders:write"}))},
                               {hash_api_key("gg_key_abc"): "pos-1"})
    policy = AuthenticationPolicy(AuthenticationConfig(), JwtVerifier([], own=(key, own)), holder)
    token = key.issue(issuer="govgate", audience="govgate-gateway", subject="pos-1", ttl_seconds=60, scope="orders:read")
    ctx = context({"authorization": f"Bearer {token}"})
    asyncio.run(policy.on_request(ctx))
    assert ctx.consumer.id == "pos-1" and ctx.consumer.scopes == {"orders:read"}
    ctx = context({"x-api-key": "gg_key_abc"})
    asyncio.run(policy.on_request(ctx))
    assert ctx.consumer.scopes == {"orders:read", "orders:write"}
    for headers in ({}, {"x-api-key": "gg_key_wrong"}, {"authorization": "Basic eDp5"},
                    {"authorization": f"Bearer {key.issue(issuer='govgate', audience='govgate-gateway', subject='ghost', ttl_seconds=60)}"}):
        with pytest.raises(Problem) as refused:
            asyncio.run(policy.on_request(context(headers)))
        assert refused.value.status == 401 and refused.value.headers["WWW-Authenticate"].startswith("Bearer")
