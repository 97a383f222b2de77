"""Correlation ids: kept when sane, replaced otherwise."""

from __future__ import annotations

import uuid

import pytest

from policies.correlation_id import CorrelationIdConfig, CorrelationIdPolicy

POLICY = CorrelationIdPolicy(CorrelationIdConfig())


@pytest.mark.parametrize("sent", ["abc", "checkout-7f3a", "a" * 128, "00-4bf92f35:span.1/x+y=z@host"])
def test_sane_ids_are_kept(sent: str) -> None:
    assert POLICY.assign({"x-correlation-id": sent}) == sent


@pytest.mark.parametrize("sent", ["", "a" * 129, "has space", "semi;colon", "quote\"", "new\nline", "café", "<b>"])
def test_other_ids_are_replaced_with_a_uuid(sent: str) -> None:
    assigned = POLICY.assign({"x-correlation-id": sent})
    assert assigned != sent and str(uuid.UUID(assigned)) == assigned


def test_missing_id_is_generated_and_unique() -> None:
    assert len({POLICY.assign({}) for _ in range(100)}) == 100


def test_header_name_and_length_are_configurable() -> None:
    policy = CorrelationIdPolicy(CorrelationIdConfig(header="X-Request-ID", max_length=16))
    assert policy.assign({"x-request-id": "short-id"}) == "short-id"
    assert policy.assign({"x-request-id": "x" * 17}) != "x" * 17
