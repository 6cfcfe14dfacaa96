"""The route table builds both the aiohttp router and the OpenAPI paths, so a route is added once.

That a running application answers exactly the documented routes is checked in
``tests/integration/test_web_app.py``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.access import ReadGuard, TokenAccess
from app.web.openapi import openapi_document
from app.web.routes import READ_SECURITY, ROUTES, Route, add_routes, openapi_paths
from bridges.connection import Secret


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
    add_routes(app, None, TABLE, guard=ReadGuard(None))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/hello/ada")
        assert (response.status, await response.json()) == (200, {"method": "GET", "name": "ada"})
        assert (await client.head("/hello/ada")).status == 200  # as aiohttp's add_get does
        assert (await client.put("/hello")).status == 200
        assert (await client.get("/hello")).status == 405
    assert openapi_paths(TABLE) == {"/hello/{name}": {"get": OPERATION}, "/hello": {"put": {**OPERATION, "operationId": "y"}}}


def test_the_query_api_and_only_it_documents_the_read_token() -> None:
    guarded = {route.path for route in ROUTES if READ_SECURITY in route.operation.get("security", [])}
    assert guarded == {"/v1/metrics", "/v1/metrics/{metric}/{student_id}", "/v1/metrics/{metric}/{student_id}/latest"}
    document = openapi_document()
    scheme = document["components"]["securitySchemes"]["readAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path in guarded:
        operation = document["paths"][path]["get"]
        assert operation["security"] == [{}, READ_SECURITY]  # none while reads are open
        assert {"401", "403"} <= operation["responses"].keys()


async def test_what_a_route_documents_as_needing_the_read_token_is_enforced() -> None:
    table: tuple[Route[None], ...] = (
        Route("GET", "/hello/{name}", lambda api: hello, {**OPERATION, "security": [{}, READ_SECURITY]}),
        Route("GET", "/open/{name}", lambda api: hello, {**OPERATION, "operationId": "y"}),
    )
    app = web.Application()
    add_routes(app, None, table, guard=ReadGuard(TokenAccess(Secret("tok"))))
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/hello/ada")).status == 401
        assert (await client.get("/hello/ada", headers={"Authorization": "Bearer nope"})).status == 401
        assert (await client.get("/hello/ada", headers={"Authorization": "Bearer tok"})).status == 200
        assert (await client.get("/open/ada")).status == 200
