"""Malformed, oversized and hostile input: a clear 4xx every time, nothing half-written, the process stays up."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, spawn, wait_http
from tests.e2e.conftest import GatewayProcess, running_gateway
from tests.e2e.reliability import Reliability

pytestmark = pytest.mark.e2e
DOCS = "/registry/contracts/erp.sales-orders/versions"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, sample_erp: str, catalog: list[dict]) -> Iterator[GatewayProcess]:
    with running_gateway(tmp_path_factory.mktemp("bad-input"), sample_erp, catalog, body_timeout_seconds=1.5) as running:
        yield running


def status_of(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "").split(";")[0]
    slug = response.json().get("type", "").rsplit("/", 1)[-1] if kind == "application/problem+json" else ""
    return f"{response.status_code} {slug}".strip()


def alive(gw: GatewayProcess) -> None:
    assert httpx.get(gw.url + "/healthz", timeout=5).status_code == 200
    assert gw.client.get("/wms.inventory/v1/positions", params={"limit": 1}).status_code == 200


def versions(gw: GatewayProcess) -> list[str]:
    return [v["version"] for v in gw.admin.get(DOCS).json()]


UPLOADS = [
    ("malformed YAML", b"openapi: 3.1.0\ninfo: {title: [unclosed\n", "application/yaml"),
    ("malformed JSON", b'{"openapi": "3.1.0", "info": ', "application/json"),
    ("YAML alias bomb (billion laughs)", b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                                         b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
     "application/yaml"),
    ("10,000-deep nesting", b"[" * 10_000 + b"]" * 10_000, "application/json"),
    ("non-UTF-8 bytes", b"openapi: 3.1.0\ninfo: {title: caf\xe9, version: 9.9.9}\npaths: {}\n", "application/yaml"),
    ("a list, not a mapping", b"[1, 2, 3]", "application/json"),
    ("an OpenAPI 2.0 (Swagger) document", b'{"swagger": "2.0", "info": {"title": "x", "version": "1"}}',
     "application/json"),
]


@pytest.mark.parametrize(("what", "body", "media"), UPLOADS, ids=[u[0] for u in UPLOADS])
def test_bad_documents_are_refused_and_nothing_is_stored(gw: GatewayProcess, what: str, body: bytes,
                                                         media: str) -> None:
    before = versions(gw)
    response = gw.admin.post(DOCS, content=body, headers={"content-type": media})
    assert 400 <= response.status_code < 500 and response.headers["content-type"] == "application/problem+json"
    assert versions(gw) == before
    alive(gw)
    Reliability.record("registry upload", what, status_of(response))


def test_a_50_mb_document_is_refused_before_it_is_read(gw: GatewayProcess) -> None:
    body = b'{"openapi": "3.1.0", "padding": "' + b"x" * (50 * 1024 * 1024) + b'"}'
    response = gw.admin.post(DOCS, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    alive(gw)
    Reliability.record("registry upload", "a 50 MB document", status_of(response))


def test_remote_refs_are_never_fetched(gw: GatewayProcess, catalog: list[dict], tmp_path: Path) -> None:
    port = free_port()
    listener = spawn(["-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)])
    try:
        wait_http(f"http://127.0.0.1:{port}/", process=listener)
        document = json.loads(json.dumps(next(e for e in catalog if e["name"] == "erp.sales-orders")["loaded"]))
        document["info"]["version"] = "1.9.0"
        document["components"]["schemas"]["Probe"] = {"$ref": f"http://127.0.0.1:{port}/secret.json"}
        response = gw.admin.post(DOCS, json=document)
        assert response.status_code == 422 and "remote" in response.text
    finally:
        listener.terminate()
        _, requests_log = listener.communicate(timeout=10)  # http.server logs every request on stderr
    assert b"secret.json" not in requests_log
    Reliability.record("registry upload", "a remote `$ref` (server-side request forgery)",
                       f"{status_of(response)}; the URL was never requested")


def test_a_recursive_schema_is_validated_at_every_depth(gw: GatewayProcess) -> None:
    """OrderLine.components is a list of OrderLine: an error three bundles deep is found and pointed at."""
    from tests.e2e.test_governed_call import ORDER

    line = {"sku": "SKU-1001", "quantity": 1, "unitPrice": {"amount": "1.00", "currency": "EUR"}}
    nested = {**line, "components": [{**line, "components": [{**line, "quantity": 0}]}]}
    before = gw.last_upstream_request()
    response = gw.client.post("/erp.sales-orders/v1/orders", json={**ORDER, "lines": [nested]})
    assert response.status_code == 400
    pointers = [e["pointer"] for e in response.json()["errors"]]
    assert pointers == ["/lines/0/components/0/components/0/quantity"]
    assert gw.last_upstream_request() == before
    Reliability.record("gateway", "an error three levels deep in a recursive schema (OrderLine.components)",
                       status_of(response) + " pointing at /lines/0/components/0/components/0/quantity")


GATEWAY_BODIES = [
    ("non-UTF-8 JSON body", b'{"channel": "w\xffb"}', "application/json"),
    ("10,000-deep JSON body", b"[" * 10_000 + b"]" * 10_000, "application/json"),
    ("truncated JSON body", b'{"channel": "web", "lines": [', "application/json"),
    ("SQL injection in a string field", json.dumps({"channel": "web' OR '1'='1"}).encode(), "application/json"),
]


@pytest.mark.parametrize(("what", "body", "media"), GATEWAY_BODIES, ids=[b[0] for b in GATEWAY_BODIES])
def test_bad_bodies_never_reach_the_upstream(gw: GatewayProcess, what: str, body: bytes, media: str) -> None:
    before = gw.last_upstream_request()
    response = gw.client.post("/erp.sales-orders/v1/orders", content=body, headers={"content-type": media})
    assert response.status_code == 400, response.text
    assert gw.last_upstream_request() == before
    alive(gw)
    Reliability.record("gateway", what, status_of(response) + "; the upstream never saw it")


@pytest.mark.parametrize("path", ["/../../etc/passwd", "/erp.sales-orders/v1/../../registry/consumers",
                                  "/erp.sales-orders/v1/orders/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                                  "/registry/contracts/..%2F..%2Fetc%2Fpasswd/versions/1.0.0"])
def test_path_traversal(gw: GatewayProcess, path: str) -> None:
    with socket.create_connection(("127.0.0.1", int(gw.url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: {gw.client.headers['authorization']}\r\n"
                     "Connection: close\r\n\r\n".encode())
        answer = sock.recv(65536).decode("latin-1")
    status = int(answer.split(" ", 2)[1])
    assert status in (400, 401, 403, 404), answer[:300]
    alive(gw)
    Reliability.record("routing", f"path traversal `{path}`", f"{status}; nothing outside the route table served")


def test_injection_strings_in_names_and_versions(gw: GatewayProcess) -> None:
    for name in ("x'; DROP TABLE contracts;--", "<script>alert(1)</script>", "../etc", "a" * 500):
        response = gw.admin.post("/registry/contracts", json={"name": name, "kind": "openapi", "owner": "t",
                                                              "upstream": "erp"})
        assert response.status_code == 400
    odd = gw.admin.get("/registry/contracts/erp.sales-orders/versions/1.0.0'%20OR%20'1'='1")
    assert odd.status_code == 404
    assert "erp.sales-orders" in [c["name"] for c in gw.admin.get("/registry/contracts").json()]
    Reliability.record("registry", "SQL and script injection in contract names and versions",
                       "400 (names must match a pattern) / 404; tables intact")


def test_huge_headers_are_refused(gw: GatewayProcess) -> None:
    seen = []
    for path in ("/wms.inventory/v1/positions", "/registry/contracts"):
        for size in (40_000, 200_000):  # past the gateway's 32 KB; the second also past common server buffers
            try:
                response = gw.client.get(path, headers={"X-Padding": "x" * size})
                assert response.status_code == 431, response.text
                assert response.json()["type"].endswith("/header-too-large") and response.headers["x-correlation-id"]
                seen.append("431 header-too-large")
            except httpx.RemoteProtocolError:
                seen.append("connection closed by the server")
    assert seen[0] == seen[2] == "431 header-too-large"  # what the gateway itself answers, API and registry
    assert gw.client.get("/wms.inventory/v1/positions", headers={"X-Padding": "x" * 10_000}).status_code == 200
    alive(gw)
    Reliability.record("gateway", "a 40 KB and a 200 KB header", f"{seen[0]} / {seen[1]}; the process stays up")


def test_a_body_that_stalls_half_way_times_out(gw: GatewayProcess) -> None:
    port = int(gw.url.rsplit(":", 1)[1])
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST /erp.sales-orders/v1/orders HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 1000\r\nAuthorization: {gw.client.headers['authorization']}\r\n\r\n"
                     '{"channel": "web",'.encode())
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < 5
    alive(gw)
    Reliability.record("gateway", "a body that stalls half-way (slowloris)", "408 body-timeout after 1.5 s")


def test_a_caller_without_a_valid_token_is_refused_before_its_body_arrives(gw: GatewayProcess) -> None:
    port = int(gw.url.rsplit(":", 1)[1])
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /erp.sales-orders/v1/orders HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000\r\nAuthorization: Bearer not-a-token\r\n\r\n")  # and no body
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 401"), answer[:200]
    assert time.monotonic() - started < 1  # not after the body timeout (1.5 s here): the body was never needed
    alive(gw)
    Reliability.record("gateway", "an unauthenticated upload that never sends its body",
                       "401 at once: authentication and the rate limit run while the body arrives")


def test_forwarded_for_spoofing_does_not_dodge_rate_limits(gw: GatewayProcess) -> None:
    gw.admin.post("/registry/plans", json={"name": "tiny", "rate_per_second": 1, "burst": 2})
    gw.admin.post("/registry/consumers", json={"id": "channel-spoof", "plan": "tiny", "scopes": ["inventory:read"]})
    gw.admin.post("/registry/consumers/channel-spoof/subscriptions", json={"contract": "wms.inventory", "major": 1})
    headers = {"Authorization": f"Bearer {gw.gateway_token('channel-spoof', ['inventory:read'])}"}
    statuses = [httpx.get(gw.url + "/wms.inventory/v1/positions", headers={**headers, "X-Forwarded-For": f"10.0.0.{i}",
                                                                          "Forwarded": f"for=10.0.1.{i}"}).status_code
                for i in range(6)]
    assert statuses.count(200) <= 3 and statuses.count(429) >= 3, statuses
    Reliability.record("rate limits", "X-Forwarded-For / Forwarded spoofing, a new address per request",
                       f"{statuses.count(429)} of 6 answered 429: limits key on the consumer, not on headers")


def test_jwt_attacks_through_the_gateway(gw: GatewayProcess) -> None:
    payload = gw.client.headers["authorization"].split(".")[1]  # the gateway's own issuer, so the alg is checked
    forged_alg = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + "."
    odd_alg = base64.urlsafe_b64encode(json.dumps({"alg": '€"x\\', "typ": "JWT"}).encode()).rstrip(b"=").decode()
    for name, token in (("alg none", forged_alg), ("oversized", "x" * 20_000), ("garbage", "not.a.token"),
                        ("alg with a quote and non-Latin-1 text", f"{odd_alg}.{payload}.")):
        response = httpx.get(gw.url + "/wms.inventory/v1/positions", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code in (400, 401, 431), response.text
        if response.status_code == 401:  # a well-formed challenge, with nothing of the caller's text in it
            assert response.headers["www-authenticate"].count('"') == 6, response.headers["www-authenticate"]
        Reliability.record("authentication", f"JWT: {name}", status_of(response) if response.status_code != 431
                           else "431")
    alive(gw)
