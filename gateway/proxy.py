"""Governed calls: `/{contract}/v{major}/{path}` routed to an operation, run through the pipeline to its upstream."""

from __future__ import annotations

from collections.abc import Callable

from litestar.types import Receive, Scope, Send

from gateway.pipeline import Pipeline, Route, Terminal, instance_of
from gateway.routing import RoutingTable
from gateway.upstream import Upstream
from policies.context import RequestContext
from registry.problems import Problem, ProblemType

UPSTREAM_NOT_CONFIGURED = ProblemType(502, "upstream-not-configured", "Upstream not configured")


class Gateway:
    """Routes, checks and forwards governed calls."""

    def __init__(self, pipeline: Pipeline, upstreams: dict[str, Upstream],
                 unrouted: Callable[[int], None] | None = None) -> None:
        self.table = RoutingTable()
        self.pipeline = pipeline
        self.upstreams = upstreams
        self.unrouted = unrouted or (lambda status: None)  # counts 404 / 405 that never reach a route

    def swap(self, table: RoutingTable) -> None:
        """Serve new requests from `table`; requests in flight finish on the old one."""
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.pipeline.context(scope)
        try:
            route, path_params, operation_path = self.table.match(ctx.path, ctx.method)
        except Problem as problem:
            self.unrouted(problem.status)
            await self.pipeline.refuse(send, ctx, problem, instance_of(scope))
            return
        ctx.path = ctx.raw_path = operation_path
        ctx.path_params = path_params
        await self.pipeline.run(scope, receive, send, ctx, route, self._terminal(route))

    def _terminal(self, route: Route) -> Terminal:
        upstream = self.upstreams.get(route.upstream or "")
        if upstream is None:
            return self._not_configured
        return upstream.handle_request

    @staticmethod
    async def _not_configured(ctx: RequestContext) -> None:
        route = ctx.route
        assert route is not None
        raise UPSTREAM_NOT_CONFIGURED(f"contract {route.contract!r} names upstream {route.upstream!r}, "
                                      "which this gateway has no address for")

    async def close(self) -> None:
        """Close every upstream's connection pool."""
        for upstream in self.upstreams.values():
            await upstream.close()
