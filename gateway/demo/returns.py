"""Sample returns upstream: serves returns.authorizations from memory (RMAs, goods receipts, refunds).

Paths carry no gateway prefix (`/rmas`, `/rmas/{id}/receipts`, `/rmas/{id}/refund`). It shares the
sample ERP's strict decoding and problem documents; a refund is pending until every authorized
unit has arrived, then approved at the demo's flat price per unit.
"""

from __future__ import annotations

import argparse
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import Litestar, Request, Response, get, post
from msgspec import Meta

from gateway.demo.erp import Body, Email, Instant, Money, ProblemError, Sku, decode, find, now, problem_response

UNIT_REFUND = Decimal("19.99")  # the demo prices every returned unit alike
Quantity = Annotated[int, Meta(ge=1, le=9999)]
Reason = Literal["damaged", "defective", "wrong-item", "wrong-size", "not-as-described", "no-longer-needed", "other"]
Condition = Literal["resellable", "damaged", "missing-parts"]


class RmaLine(Body):
    sku: Sku
    quantity: Quantity
    reason: Reason


class CreateRma(Body):
    order_id: uuid.UUID
    customer_email: Email
    lines: Annotated[list[RmaLine], Meta(min_length=1, max_length=200)]


class Rma(Body):
    id: uuid.UUID
    status: Literal["authorized", "partially-received", "received", "closed", "rejected"]
    order_id: uuid.UUID
    customer_email: str
    lines: list[RmaLine]
    created_at: Instant
    expires_at: Instant


class ReceiptLine(Body):
    sku: Sku
    quantity: Quantity
    condition: Condition


class RecordReceipt(Body):
    received_at: Instant
    lines: Annotated[list[ReceiptLine], Meta(min_length=1, max_length=200)]


class Receipt(Body):
    id: uuid.UUID
    rma_id: uuid.UUID
    received_at: Instant
    recorded_at: Instant
    lines: list[ReceiptLine]


@dataclass
class Returns:
    """In-memory state: RMAs and the units received per RMA and SKU."""

    rmas: dict[uuid.UUID, Rma] = field(default_factory=dict)
    received: dict[uuid.UUID, dict[str, int]] = field(default_factory=dict)


@post("/rmas", status_code=201)
async def create_rma(request: Request, returns: Returns) -> Response[Rma]:
    """Authorize a return."""
    data = decode(await request.body(), CreateRma)
    created = now()
    rma = Rma(id=uuid.uuid4(), status="authorized", order_id=data.order_id, customer_email=data.customer_email,
              lines=data.lines, created_at=created, expires_at=created + timedelta(days=30))
    returns.rmas[rma.id] = rma
    returns.received[rma.id] = {}
    return Response(rma, status_code=201, headers={"Location": f"/rmas/{rma.id}"})


@get("/rmas/{rma_id:str}")
async def get_rma(rma_id: str, returns: Returns) -> Rma:
    """One RMA."""
    return find(returns.rmas, rma_id, "rmaId")


@post("/rmas/{rma_id:str}/receipts", status_code=201)
async def record_receipt(rma_id: str, request: Request, returns: Returns) -> Receipt:
    """Record goods that arrived; more units of a SKU than authorized is a 409."""
    rma = find(returns.rmas, rma_id, "rmaId")
    data = decode(await request.body(), RecordReceipt)
    authorized = _units(rma.lines)
    received = dict(returns.received[rma.id])
    for line in data.lines:
        received[line.sku] = received.get(line.sku, 0) + line.quantity
        if received[line.sku] > authorized.get(line.sku, 0):
            raise ProblemError(409, f"More units of {line.sku} than the RMA authorizes.", "over-receipt")
    returns.received[rma.id] = received
    status = "received" if received == authorized else "partially-received"
    returns.rmas[rma.id] = msgspec.structs.replace(rma, status=status)
    return Receipt(id=uuid.uuid4(), rma_id=rma.id, received_at=data.received_at, recorded_at=now(), lines=data.lines)


@get("/rmas/{rma_id:str}/refund")
async def get_refund(rma_id: str, returns: Returns) -> dict[str, Any]:
    """The refund: pending until every unit arrived, then approved."""
    rma = find(returns.rmas, rma_id, "rmaId")
    units = sum(returns.received[rma.id].values())
    amount = Money(f"{UNIT_REFUND * units:.2f}", "EUR")
    return {"rmaId": str(rma.id), "state": "approved" if rma.status == "received" else "pending",
            "amount": msgspec.to_builtins(amount), "paidAt": None}


@get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


def _units(lines: list[RmaLine]) -> dict[str, int]:
    units: dict[str, int] = {}
    for line in lines:
        units[line.sku] = units.get(line.sku, 0) + line.quantity
    return units


def create_app() -> Litestar:
    """A fresh upstream with empty state."""
    returns = Returns()

    async def provide_returns() -> Returns:
        return returns

    return Litestar(route_handlers=[create_rma, get_rma, record_receipt, get_refund, healthz],
                    dependencies={"returns": provide_returns}, exception_handlers={Exception: problem_response},
                    openapi_config=None)


def main(argv: list[str] | None = None) -> None:
    """Run the sample returns upstream with uvicorn."""
    parser = argparse.ArgumentParser(prog="python -m gateway.demo.returns", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9091, help="port to listen on")
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning", server_header=False)


if __name__ == "__main__":
    main()
