"""Sample ERP upstream: serves erp.sales-orders and wms.inventory from memory.

Paths carry no gateway prefix (`/orders`, `/positions`, `/reservations/...`).
Bodies are decoded strictly with msgspec, so the upstream enforces the same
shapes as the contracts; errors are RFC 9457 problem+json.

Test hooks: `GET /_debug/last-request` describes the last request received
(other than /_debug and /healthz), and an `X-Upstream-Delay-Ms` request header
delays the answer by that many milliseconds (at most 30000).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from http import HTTPStatus
from typing import Annotated, Any, Literal, TypeVar, cast

import msgspec
from litestar import Litestar, Request, Response, delete, get, post
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import Parameter
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send
from msgspec import UNSET, Meta, UnsetType

T = TypeVar("T")
PROBLEMS = "https://contracts.govgate.dev/problems/"
AMOUNT = re.compile(r"^-?\d{1,12}(\.\d{1,4})?$")
MAX_DELAY_MS = 30000
UNRECORDED = ("/_debug", "/healthz")
ECHOED_VALUE = re.compile(r"(Invalid (?:enum )?value) .*")  # msgspec quotes the bad value: drop it

SKU = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,31}$")
Sku = Annotated[str, Meta(pattern=SKU.pattern)]
LOCATION = r"^[A-Z]{2}-[0-9]{2}-[0-9]{2}$"
Location = Annotated[str, Meta(pattern=LOCATION)]
Email = Annotated[str, Meta(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
Text64 = Annotated[str, Meta(min_length=1, max_length=64)]
Text80 = Annotated[str, Meta(min_length=1, max_length=80)]
Text120 = Annotated[str, Meta(min_length=1, max_length=120)]
Instant = Annotated[datetime, Meta(tz=True)]
Channel = Literal["web", "marketplace", "pos", "partner"]
OrderStatus = Literal["created", "confirmed", "shipped", "cancelled"]


class Body(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Base of request and response bodies: camelCase JSON, unknown members refused."""


class Money(Body):
    amount: Annotated[str, Meta(pattern=AMOUNT.pattern)]
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]


class Address(Body):
    name: Text120
    line1: Text120
    city: Text80
    postal_code: Annotated[str, Meta(min_length=1, max_length=16)]
    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")]
    line2: Annotated[str, Meta(max_length=120)] | UnsetType = UNSET
    region: Annotated[str, Meta(max_length=80)] | UnsetType = UNSET


class Customer(Body):
    id: Text64
    email: Email
    name: Text120


class OrderLine(Body):
    sku: Sku
    quantity: Annotated[int, Meta(ge=1, le=9999)]
    unit_price: Money
    components: Annotated[list[OrderLine], Meta(min_length=1, max_length=50)] | UnsetType = UNSET


class CardPayment(Body, tag_field="method", tag="card"):
    last4: Annotated[str, Meta(pattern=r"^[0-9]{4}$")]


class InvoicePayment(Body, tag_field="method", tag="invoice"):
    terms_days: Literal[14, 30, 60, 90]


class CreateOrder(Body):
    channel: Channel
    external_reference: Text64
    customer: Customer
    lines: Annotated[list[OrderLine], Meta(min_length=1, max_length=200)]
    shipping_address: Address
    payment: CardPayment | InvoicePayment
    billing_address: Address | UnsetType = UNSET
    requested_delivery_date: date | UnsetType = UNSET
    notes: Annotated[str, Meta(max_length=2000)] | None | UnsetType = UNSET


class CancelOrder(Body):
    reason: Literal["customer-request", "fraud-suspected", "out-of-stock", "other"]
    comment: Annotated[str, Meta(max_length=500)] | UnsetType = UNSET


class Cancellation(CancelOrder, kw_only=True):
    cancelled_at: datetime


class Order(CreateOrder, kw_only=True):
    id: uuid.UUID
    status: OrderStatus
    created_at: datetime
    total: Money
    cancellation: Cancellation | UnsetType = UNSET


class Position(Body):
    sku: str
    location: str
    on_hand: int
    reserved: int
    available: int
    updated_at: datetime

    def reserve(self, quantity: int) -> None:
        """Move quantity from available to reserved (negative to release)."""
        self.reserved += quantity
        self.available = self.on_hand - self.reserved
        self.updated_at = now()


class CreateReservation(Body):
    sku: Sku
    location: Location
    quantity: Annotated[int, Meta(ge=1, le=10000)]
    order_reference: Text64
    expires_at: Instant | UnsetType = UNSET


class Reservation(CreateReservation, kw_only=True):
    id: uuid.UUID
    state: Literal["held", "released", "consumed"]
    created_at: datetime
    released_at: datetime | UnsetType = UNSET


class ProblemError(Exception):
    """An error answered as an RFC 9457 problem document."""

    def __init__(self, status: int, detail: str, kind: str = "", title: str = "", errors: list | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.errors = status, detail, errors or []
        self.title = title or HTTPStatus(status).phrase
        self.type = PROBLEMS + kind if kind else "about:blank"


def field_error(pointer: str, message: str) -> dict[str, str]:
    """One entry of a problem's `errors`, bounded and without the offending value."""
    return {"pointer": pointer[:512], "message": ECHOED_VALUE.sub(r"\1", message)[:200]}


def bad_request(detail: str, pointer: str, message: str) -> ProblemError:
    """A 400 problem pointing at one offending member or parameter."""
    return ProblemError(400, detail, errors=[field_error(pointer, message)])


# sku, then location:onHand pairs; reserved starts at zero
SEED = """
TSHIRT-BLK-M BE-01-03:140 BE-02-01:35
TSHIRT-BLK-L BE-01-03:96 BE-02-01:20
TSHIRT-WHT-M BE-01-04:210
TSHIRT-WHT-S BE-01-04:88
HOODIE-GRY-M BE-01-07:64 NL-03-02:40
HOODIE-GRY-XL BE-01-07:12
JEANS-IND-3232 BE-03-01:75 NL-03-05:30
JEANS-IND-3432 BE-03-01:41
SNEAKER-RUN-42 NL-05-01:26 NL-05-02:18
SNEAKER-RUN-44 NL-05-01:9
MUG-WHT-350 BE-02-04:190 NL-02-01:60
CANDLE-VAN-S BE-02-05:150
CANDLE-VAN-L BE-02-05:45
GIFTBOX-DELUXE BE-02-06:33
TOTE-CNV-NAT BE-02-07:120 NL-02-03:80
SOCKS-WOOL-3943 BE-04-01:300
BEANIE-NVY-OS BE-04-02:58
SCARF-RED-OS BE-04-02:0 NL-04-01:14
BOTTLE-STL-750 NL-06-01:95
UMBRELLA-BLK-C NL-06-02:37
"""


@dataclass
class Store:
    """In-memory state of one upstream instance."""

    orders: dict[uuid.UUID, Order] = field(default_factory=dict)
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)
    reservations: dict[uuid.UUID, Reservation] = field(default_factory=dict)
    last_request: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for row in SEED.strip().splitlines():
            sku, *stock = row.split()
            for pair in stock:
                location, on_hand = pair.split(":")
                self.positions[sku, location] = Position(sku, location, int(on_hand), 0, int(on_hand), now())


def now() -> datetime:
    """The current UTC time in whole seconds."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def decode(body: bytes, type_: type[T]) -> T:
    """Decode a JSON body; a mismatch is a 400 problem with a JSON pointer.

    JSON Schema counts 870.0 as an integer, so integral floats are accepted where the contract
    says integer (found by `govgate verify`); everything else is decoded strictly.
    """
    try:
        return msgspec.convert(_integral(msgspec.json.decode(body)), type_)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$")
        pointer = re.sub(r"\.|\[(\d+)\]", lambda m: "/" + (m.group(1) or ""), where.rstrip("`"))
        raise bad_request("Request body does not match the contract.", pointer, message) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise bad_request("Request body is not valid JSON.", "", "Malformed JSON") from None




def _integral(value: Any) -> Any:
    """Integral floats as ints, everywhere in a decoded document."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def page(items: list[Any], limit: int, cursor: str | None) -> dict[str, Any]:
    """Slice one page out of items; the cursor is an opaque base64url offset."""
    start = 0
    if cursor is not None:
        try:
            start = msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["o"]
            assert isinstance(start, int) and start >= 0
        except (binascii.Error, ValueError, msgspec.DecodeError, KeyError, TypeError, AssertionError):
            raise bad_request("cursor is not a cursor this API issued.", "cursor", "Invalid cursor") from None
    end = start + limit
    following = base64.urlsafe_b64encode(msgspec.json.encode({"o": end})).rstrip(b"=").decode()
    return {"items": items[start:end], "nextCursor": following if end < len(items) else None}


def order_total(lines: list[OrderLine]) -> Money:
    """Sum quantity x unit price over the top-level lines, in their single currency."""
    currencies = {line.unit_price.currency for line in lines}
    if len(currencies) > 1:
        # a business rule, not a malformed request: 422, documented in the contract
        raise ProblemError(422, "All lines must be priced in one currency.", "business-rule",
                           errors=[field_error("/lines", "Mixed currencies")])
    amount = f"{sum((Decimal(x.unit_price.amount) * x.quantity for x in lines), Decimal(0)):f}"
    if not AMOUNT.match(amount):
        raise bad_request("The order total exceeds the supported range.", "/lines", "Total out of range")
    return Money(amount, currencies.pop())


def find(table: dict[uuid.UUID, T], raw_id: str, name: str) -> T:
    """Look a resource up by its UUID path parameter: 400 if malformed, 404 if unknown."""
    try:
        key = uuid.UUID(raw_id)
    except ValueError:
        raise bad_request(f"{name} must be a UUID.", name, "Expected a UUID") from None
    if key not in table:
        raise ProblemError(404, f"No resource with {name} {key}.")
    return table[key]


@post("/orders", status_code=201)
async def create_order(request: Request, store: Store) -> Response[Order]:
    """Create a sales order."""
    data = decode(await request.body(), CreateOrder)
    fields = msgspec.structs.asdict(data)
    order = Order(**fields, id=uuid.uuid4(), status="created", created_at=now(), total=order_total(data.lines))
    store.orders[order.id] = order
    return Response(order, status_code=201, headers={"Location": f"/orders/{order.id}"})


@get("/orders")
async def list_orders(
    store: Store,
    status: OrderStatus | None = None,
    channel: Channel | None = None,
    created_from: Annotated[datetime | None, Parameter(query="createdFrom")] = None,
    created_to: Annotated[datetime | None, Parameter(query="createdTo")] = None,
    limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Parameter(max_length=200)] = None,
) -> dict[str, Any]:
    """List orders newest first, filtered and paged."""
    for name, value in (("createdFrom", created_from), ("createdTo", created_to)):
        if value is not None and value.tzinfo is None:
            raise bad_request(f"{name} must be an RFC 3339 date-time with offset.", name, "Missing UTC offset")
    items = [o for o in reversed(store.orders.values())
             if (status is None or o.status == status) and (channel is None or o.channel == channel)
             and (created_from is None or o.created_at >= created_from)
             and (created_to is None or o.created_at < created_to)]
    return page(items, limit, cursor)


@get("/orders/{order_id:str}")
async def get_order(order_id: str, store: Store) -> Order:
    """Fetch one order."""
    return find(store.orders, order_id, "orderId")


@post("/orders/{order_id:str}/cancel", status_code=200)
async def cancel_order(order_id: str, request: Request, store: Store) -> Order:
    """Cancel an order that has neither shipped nor been cancelled."""
    order = find(store.orders, order_id, "orderId")
    data = decode(await request.body(), CancelOrder)
    if order.status in ("shipped", "cancelled"):
        raise ProblemError(409, f"Order {order.id} is already {order.status}.", "order-not-cancellable",
                           "Order cannot be cancelled")
    order.status = "cancelled"
    order.cancellation = Cancellation(data.reason, data.comment, cancelled_at=now())
    return order


@get("/positions")
async def list_positions(
    store: Store,
    sku: Annotated[str | None, Parameter(pattern=SKU.pattern)] = None,
    location: Annotated[str | None, Parameter(pattern=LOCATION)] = None,
    limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Parameter(max_length=200)] = None,
) -> dict[str, Any]:
    """List stock positions, filtered and paged."""
    items = [p for (s, loc), p in sorted(store.positions.items())
             if (sku is None or s == sku) and (location is None or loc == location)]
    return page(items, limit, cursor)


@get("/positions/{sku:str}")
async def get_sku_positions(sku: str, store: Store) -> dict[str, Any]:
    """All positions of one SKU and its total available quantity."""
    if not SKU.match(sku):
        raise bad_request("sku is not a valid SKU.", "sku", f"Expected `str` matching regex '{SKU.pattern}'")
    positions = [p for (s, _), p in sorted(store.positions.items()) if s == sku]
    if not positions:
        raise ProblemError(404, f"SKU {sku} is not stocked.")
    return {"sku": sku, "positions": positions, "totalAvailable": sum(p.available for p in positions)}


@post("/reservations", status_code=201)
async def create_reservation(request: Request, store: Store) -> Response[Reservation]:
    """Hold stock at one location for an order."""
    data = decode(await request.body(), CreateReservation)
    position = store.positions.get((data.sku, data.location))
    available = position.available if position else 0
    if position is None or available < data.quantity:
        raise ProblemError(409, f"Requested {data.quantity} of {data.sku} at {data.location} but only "
                           f"{available} are available.", "insufficient-stock", "Insufficient stock")
    position.reserve(data.quantity)
    reservation = Reservation(**msgspec.structs.asdict(data), id=uuid.uuid4(), state="held", created_at=now())
    store.reservations[reservation.id] = reservation
    return Response(reservation, status_code=201, headers={"Location": f"/reservations/{reservation.id}"})


@get("/reservations/{reservation_id:str}")
async def get_reservation(reservation_id: str, store: Store) -> Reservation:
    """Fetch one reservation."""
    return find(store.reservations, reservation_id, "reservationId")


@delete("/reservations/{reservation_id:str}", status_code=204)
async def release_reservation(reservation_id: str, store: Store) -> None:
    """Release a held reservation; releasing twice changes nothing."""
    reservation = find(store.reservations, reservation_id, "reservationId")
    if reservation.state == "held":
        store.positions[reservation.sku, reservation.location].reserve(-reservation.quantity)
        reservation.state, reservation.released_at = "released", now()


@get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness probe."""
    return {"status": "ok"}


@get("/_debug/last-request")
async def last_request(store: Store) -> dict[str, Any]:
    """Method, path, query string and headers of the last recorded request."""
    if store.last_request is None:
        raise ProblemError(404, "No request has been received yet.")
    return store.last_request


def problem_response(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    """Render any error as application/problem+json carrying the request's correlation id."""
    if isinstance(exc, HTTPException) and exc.status_code < 500:  # litestar's own: routing, query parameters
        extra = exc.extra if isinstance(exc, ValidationException) and isinstance(exc.extra, list) else []
        detail = "Request parameters do not match the contract." if extra else HTTPStatus(exc.status_code).phrase
        errors = [field_error(str(e.get("key", "")), str(e.get("message", ""))) for e in extra]
        exc = ProblemError(exc.status_code, detail, errors=errors)
    elif not isinstance(exc, ProblemError):
        exc = ProblemError(500, "The upstream failed to process the request.")
    body: dict[str, Any] = {"type": exc.type, "title": exc.title, "status": exc.status, "detail": exc.detail}
    if correlation_id := request.headers.get("x-correlation-id"):
        body["correlationId"] = correlation_id[:128]
    if exc.errors:
        body["errors"] = exc.errors
    return Response(body, status_code=exc.status, media_type="application/problem+json")


def recorder(store: Store, app: ASGIApp) -> ASGIApp:
    """Wrap app to record requests for /_debug and to honour X-Upstream-Delay-Ms."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(UNRECORDED):
            http = cast(HTTPScope, scope)
            headers: dict[str, str] = {}
            for raw_name, raw_value in http["headers"]:
                name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            store.last_request = {"method": http["method"], "path": http["path"],
                                  "queryString": http["query_string"].decode("latin-1"), "headers": headers}
            delay = headers.get("x-upstream-delay-ms", "")
            if delay.isdigit():
                await asyncio.sleep(min(int(delay), MAX_DELAY_MS) / 1000)
        await app(scope, receive, send)

    return handle


def create_app() -> Litestar:
    """A fresh upstream with its own seeded in-memory state."""
    store = Store()

    async def provide_store() -> Store:
        return store

    handlers = [create_order, list_orders, get_order, cancel_order, list_positions, get_sku_positions,
                create_reservation, get_reservation, release_reservation, healthz, last_request]
    app = Litestar(route_handlers=handlers, dependencies={"store": provide_store},
                   exception_handlers={Exception: problem_response}, openapi_config=None)
    app.asgi_handler = recorder(store, app.asgi_handler)  # outside the router: unmatched paths are recorded too
    return app


app = create_app()


def main(argv: list[str] | None = None) -> None:
    """Run the sample ERP upstream with uvicorn (or granian, as the benchmarks do)."""
    parser = argparse.ArgumentParser(prog="python -m gateway.demo.erp", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    args = parser.parse_args(argv)
    if args.server == "granian":
        from granian import Granian
        from granian.constants import Interfaces
        from granian.log import LogLevels

        Granian("gateway.demo.erp:app", address=args.host, port=args.port, interface=Interfaces.ASGI,
                workers=1, log_level=LogLevels.warning, backlog=2048).serve()
        return
    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", server_header=False)


if __name__ == "__main__":
    main()
