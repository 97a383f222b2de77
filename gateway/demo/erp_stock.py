"""The sample ERP with one admin endpoint more, for the events demo: stock adjustments from the WMS.

    POST /_admin/stock-adjustments   {"eventId", "sku", "location", "delta", "reason"}: apply once per eventId
    GET  /_admin/stock-adjustments   the adjustments applied so far, oldest first

This is the ERP side of `inventory.adjusted`: the demo's consumer (gateway/demo/inventory_consumer.py)
reads the event stream through govgate and calls this. It is not part of any published contract.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, get, post
from litestar.datastructures import State
from msgspec import Meta

from gateway.demo import erp


class StockAdjustment(erp.Body):
    event_id: Annotated[str, Meta(min_length=1, max_length=300)]
    sku: erp.Sku
    location: erp.Location
    delta: Annotated[int, Meta(ge=-100000, le=100000)]
    reason: Annotated[str, Meta(max_length=40)] = ""


class AppliedAdjustment(StockAdjustment, kw_only=True):
    on_hand_after: int
    applied_at: datetime
    duplicate: bool = False


@post("/_admin/stock-adjustments", status_code=200)
async def apply_adjustment(request: Request[Any, Any, Any], store: erp.Store, state: State) -> AppliedAdjustment:
    """Change a position's on-hand quantity by `delta`; the same eventId again changes nothing."""
    data = erp.decode(await request.body(), StockAdjustment)
    applied: dict[str, AppliedAdjustment] = state.adjustments
    if data.event_id in applied:
        return msgspec.structs.replace(applied[data.event_id], duplicate=True)
    position = store.positions.get((data.sku, data.location))
    if position is None:
        position = store.positions[data.sku, data.location] = erp.Position(data.sku, data.location, 0, 0, 0, erp.now())
    position.on_hand = max(0, position.on_hand + data.delta)
    position.reserve(0)  # recomputes available and the update time
    applied[data.event_id] = AppliedAdjustment(**msgspec.structs.asdict(data), on_hand_after=position.on_hand,
                                               applied_at=erp.now())
    return applied[data.event_id]


@get("/_admin/stock-adjustments")
async def list_adjustments(state: State) -> list[AppliedAdjustment]:
    """Every adjustment applied, oldest first."""
    return list(state.adjustments.values())


def create_app() -> Litestar:
    """A fresh sample ERP that also takes stock adjustments."""
    app = erp.create_app()
    app.state.adjustments = {}
    app.register(apply_adjustment)
    app.register(list_adjustments)
    return app


app = create_app()


def main(argv: list[str] | None = None) -> None:
    """Run it with uvicorn."""
    parser = argparse.ArgumentParser(prog="python -m gateway.demo.erp_stock", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", server_header=False)


if __name__ == "__main__":
    main()
