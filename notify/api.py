"""The delivery log's route of the JSON API (``/api/v1/deliveries``).

Registered in seamwatch.api_routes; docs/api.md documents it.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from notify.delivery_log import FILTERS, DeliveryFilter, DeliveryFilterError, deliveries_document
from seamwatch.api import API_PREFIX, bad_request, query_problem, store_failed
from storage import Store, StoreError


def routes(store: Store) -> list[BaseRoute]:
    """The delivery log's routes over ``store``."""

    async def deliveries(request: Request) -> Response:
        params = request.query_params
        problem = query_problem(params, set(FILTERS))
        if problem:
            return bad_request(problem)
        try:
            wanted = DeliveryFilter.parse(params)
        except DeliveryFilterError as exc:
            return bad_request(" ".join(str(exc).splitlines()))
        try:
            return JSONResponse(await run_in_threadpool(deliveries_document, store, wanted))
        except StoreError as exc:
            return store_failed(exc)

    return [Route(f"{API_PREFIX}/deliveries", deliveries, methods=["GET"])]
