"""Authentication and authorization through the real gateway process."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import CONSUMER, GatewayProcess

pytestmark = pytest.mark.e2e


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


def test_no_or_bad_credentials_are_401_before_anything_else(gateway: GatewayProcess) -> None:
    before = gateway.last_upstream_request()
    anonymous = httpx.Client(base_url=gateway.url, timeout=10)
    response = anonymous.get("/wms.inventory/v1/positions")
    problem(response, 401)
    assert response.headers["www-authenticate"].startswith('Bearer realm="govgate"')
    bad = anonymous.get("/wms.inventory/v1/positions", headers={"Authorization": "Bearer abc.def.ghi"})
    problem(bad, 401)
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]
    problem(anonymous.post("/erp.sales-orders/v1/orders", json={"not": "validated yet"}), 401)
    assert gateway.last_upstream_request() == before


def test_client_credentials_token_endpoint(gateway: GatewayProcess) -> None:
    anonymous = httpx.Client(base_url=gateway.url, timeout=10)
    granted = anonymous.post("/oauth2/token", data={"grant_type": "client_credentials", "scope": "inventory:read"},
                             auth=(CONSUMER, gateway.client_secret))
    assert granted.status_code == 200, granted.text
    body = granted.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "inventory:read" and body["expires_in"] == 3600
    assert granted.headers["cache-control"] == "no-store"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert anonymous.get("/wms.inventory/v1/positions", headers=headers).status_code == 200
    # the token only carries inventory:read: creating an order needs orders:write
    refused = anonymous.post("/erp.sales-orders/v1/orders", json={}, headers=headers)
    assert problem(refused, 403)["type"].endswith("/insufficient-scope")
    assert 'scope="orders:write"' in refused.headers["www-authenticate"]

    wrong = anonymous.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(CONSUMER, "nope"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    grant = anonymous.post("/oauth2/token", data={"grant_type": "password"}, auth=(CONSUMER, gateway.client_secret))
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    scope = anonymous.post("/oauth2/token", data={"grant_type": "client_credentials", "scope": "admin"},
                           auth=(CONSUMER, gateway.client_secret))
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    form = anonymous.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": CONSUMER,
                                                 "client_secret": gateway.client_secret})
    assert form.status_code == 200
    jwks = anonymous.get("/.well-known/jwks.json").json()
    assert jwks["keys"][0]["alg"] == "EdDSA" and "d" not in jwks["keys"][0]


def test_api_keys(gateway: GatewayProcess) -> None:
    issued = gateway.admin.post(f"/registry/consumers/{CONSUMER}/api-keys")
    assert issued.status_code == 201, issued.text
    key = issued.json()["api_key"]
    anonymous = httpx.Client(base_url=gateway.url, timeout=10)
    assert anonymous.get("/wms.inventory/v1/positions", headers={"X-API-Key": key}).status_code == 200
    problem(anonymous.get("/wms.inventory/v1/positions", headers={"X-API-Key": key + "x"}), 401)


def test_subscription_is_required(gateway: GatewayProcess) -> None:
    assert gateway.admin.post("/registry/consumers", json={"id": "channel-unsubscribed", "plan": "test",
                                                           "scopes": ["inventory:read"]}).status_code == 201
    token = gateway.gateway_token("channel-unsubscribed", ["inventory:read"])
    response = httpx.get(gateway.url + "/wms.inventory/v1/positions", headers={"Authorization": f"Bearer {token}"})
    assert problem(response, 403)["type"].endswith("/not-subscribed")
    gateway.admin.post("/registry/consumers/channel-unsubscribed/subscriptions",
                       json={"contract": "wms.inventory", "major": 1})
    # the gateway reloaded its directory in place: the same token now works
    response = httpx.get(gateway.url + "/wms.inventory/v1/positions", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
