"""The route table builds both the aiohttp router and the OpenAPI paths, so a route is added once.

That a running application answers exactly the documented routes is checked in
``tests/integration/test_web_app.py``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.web.openapi import openapi_document
from app.web.routes import ROUTES, Route, add_routes, openapi_paths


def test_the_document_s_paths_are_the_route_table_s() -> None:
    described = {(path, method) for path, item in openapi_document()["paths"].items() for method in item}
    assert described == {(route.path, route.method.lower()) for route in ROUTES}
    assert len(described) == len(ROUTES)


def test_each_route_has_its_own_operation() -> None:
    ids = [route.operation["operationId"] for route in ROUTES]
    assert len(ids) == len(set(ids))


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"method": request.method, "name": request.match_info.get("name", "")})


OPERATION: dict[str, Any] = {"operationId": "x", "summary": "x", "responses": {"200": {"description": "ok"}}}
#: a table whose handlers need nothing to be picked from
TABLE: tuple[Route[None], ...] = (
    Route("GET", "/hello/{name}", lambda api: hello, OPERATION),
    Route("PUT", "/hello", lambda api: hello, {**OPERATION, "operationId": "y"}),
)


async def test_a_route_in_a_table_reaches_the_router_and_the_paths() -> None:
    app = web.Application()
    add_routes(app, None, TABLE)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/hello/ada")
        assert (response.status, await response.json()) == (200, {"method": "GET", "name": "ada"})
        assert (await client.head("/hello/ada")).status == 200  # as aiohttp's add_get does
        assert (await client.put("/hello")).status == 200
        assert (await client.get("/hello")).status == 405
    assert openapi_paths(TABLE) == {"/hello/{name}": {"get": OPERATION}, "/hello": {"put": {**OPERATION, "operationId": "y"}}}
