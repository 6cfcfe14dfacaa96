"""The HTTP API's routes, in one table: a new route is added to :data:`ROUTES` and nowhere else.

Each :class:`Route` names its method, its path, the handler that answers it (picked from the
application's :class:`~app.web.handlers.ApiHandlers`) and its OpenAPI operation, written here in
OpenAPI's own words. :func:`add_routes` builds the aiohttp router from the table and
:func:`openapi_paths` the document's ``paths`` (:mod:`app.web.openapi` adds the schemas the
operations refer to by name, from the pydantic models). aiohttp and OpenAPI spell path
parameters alike (``{student_id}``), so one path serves both.

A route whose operation lists :data:`READ_SECURITY` is guarded by the read access
(:class:`~app.access.ReadGuard`: ``READ_TOKEN`` or the deployment's ``READ_ACCESS``): what the
document says a route requires is what :func:`add_routes` enforces.

The dashboard's pages are not the API: :func:`app.dashboard.add_dashboard` adds them.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from aiohttp import web

from app.access import ReadGuard, bearer_token
from app.web.handlers import ApiHandlers
from app.web.ingest import MAX_BODY_BYTES
from app.web.models import error_response
from bridges.public.metrics_reader import MAX_KEYED_WINDOWS
from contract.events import MAX_BATCH_EVENTS
from contract.names import ID_PATTERN, METRIC_NAME_PATTERN

__all__ = ["READ_SECURITY", "ROUTES", "Route", "SCHEMA_REF", "add_routes", "openapi_paths"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: what a table's handlers are picked from (:class:`~app.web.handlers.ApiHandlers` for ROUTES)
A = TypeVar("A")


@dataclass(frozen=True)
class Route(Generic[A]):
    """``method`` ``path`` is answered by ``handler(api)``, and described by ``operation``."""

    method: str
    path: str
    handler: Callable[[A], Handler]
    operation: dict[str, Any]


# -- the words operations are written with ---------------------------------------------------

#: where an operation finds a schema of the document's components, by name
SCHEMA_REF: Final = "#/components/schemas/{model}"
_JSON: Final = "application/json"
_ID_PATTERN: Final = f"^{ID_PATTERN}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMA_REF.format(model=name)}


def _body(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}, **extra}


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return _body(_ref("ErrorBody"), description, **extra)


_RETRY_AFTER: Final = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}}
}
_UNAVAILABLE: Final = _error("NATS is unavailable", headers=_RETRY_AFTER)

#: the security requirement of the read routes (none while reads are open: hence also {})
READ_SECURITY: Final[dict[str, list[str]]] = {"readAuth": []}
_READ_REFUSALS: Final = {
    "401": _error("READ_TOKEN (or READ_ACCESS) is set and the bearer token is missing or wrong"),
    "403": _error("the token may not read this student (READ_ACCESS decides)"),
}


def _metric_parameters(*, with_range: bool) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": "metric", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": f"^{METRIC_NAME_PATTERN}$"},
         "description": "a metric GET /v1/metrics lists (the enum: those running when this document was "
         "served); unknown metrics answer 404"},
        {"name": "student_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": _ID_PATTERN}},
    ]
    if with_range:
        for name, meaning in (("from", "windows starting at or after"), ("to", "windows starting before")):
            parameters.append(
                {"name": name, "in": "query", "required": False, "description": meaning,
                 "schema": {"type": "string", "format": "date-time"}}
            )
        parameters.append(
            {"name": "include_open", "in": "query", "required": False,
             "description": 'also the provisional values ("final": false) of windows still open; '
             "the workers write them only when METRICS_UPDATE_SECONDS is set",
             "schema": {"type": "boolean", "default": False}}
        )
    parameters.append(
        {"name": "version", "in": "query", "required": False,
         "description": "the metric's version to read (GET /v1/metrics lists them); without it, the newest "
         "complete one. Unknown versions answer 404",
         "schema": {"type": "integer", "minimum": 1}}
    )
    # A metric keyed by more than the student takes each later key field (its description's
    # key_fields) as a parameter; game_id is the one the project's metrics have.
    parameters.append(
        {"name": "game_id", "in": "query", "required": False,
         "description": "for a metric keyed by student and game: one game's windows; any other key field "
         "after the first is a parameter the same way (GET /v1/metrics lists each metric's key_fields)",
         "schema": {"type": "string", "pattern": _ID_PATTERN}}
    )
    return parameters


# -- the routes ------------------------------------------------------------------------------

ROUTES: Final[tuple[Route[ApiHandlers], ...]] = (
    Route("POST", "/v1/events", lambda api: api.ingest.handle, {
        "operationId": "ingestEvents",
        "summary": "Store one event or a batch; answered once JetStream stored every event",
        "security": [{}, {"bearerAuth": []}],
        "requestBody": {
            "required": True,
            "description": f"at most {MAX_BODY_BYTES} bytes and {MAX_BATCH_EVENTS} events",
            # An object with "events" is a batch, whatever else it holds (keys next to it are
            # ignored, as an event's unknown fields are); any other object is one event. Said so,
            # since an event tolerates unknown fields and could otherwise match both.
            "content": {_JSON: {"schema": {"oneOf": [
                _ref("EventBatch"), {"allOf": [_ref("Event"), {"not": {"required": ["events"]}}]},
            ]}}},
        },
        "responses": {
            "202": _body(_ref("Accepted"), "every event is stored (or was already)"),
            "400": _error("the body is not JSON"),
            "401": _error("INGEST_TOKEN is set and the bearer token is missing or wrong"),
            "408": _error("the body did not arrive within HTTP_BODY_SECONDS; the connection is closed"),
            "413": _error(f"the body is larger than {MAX_BODY_BYTES} bytes"),
            "415": _error("the Content-Type is not application/json"),
            "422": _error("an event or the envelope breaks the contract; nothing was stored"),
            "503": _error(
                "NATS is unavailable, or its storage is full, or INGEST_CONCURRENCY requests are being served",
                headers=_RETRY_AFTER,
            ),
        },
    }),
    Route("GET", "/v1/metrics", lambda api: api.query.metrics, {
        "operationId": "listMetrics",
        "summary": "The metrics that run (or ran), each with the description its workers published",
        "security": [{}, READ_SECURITY],
        "responses": {
            "200": _body(_ref("Metrics"), "every metric the registry knows, by name"),
            **_READ_REFUSALS,
            "503": _UNAVAILABLE,
        },
    }),
    Route("GET", "/v1/metrics/{metric}/{student_id}", lambda api: api.query.windows, {
        "operationId": "listWindows",
        "summary": "A student's final windows by start: from <= start < to (include_open: open ones too)",
        "description": (
            f"A range with from of at most {MAX_KEYED_WINDOWS:,} windows is read by key: its cost is the range's, "
            "whatever the student's history. Without from, or over a longer range, every window "
            "the bucket holds for the student is read."
        ),
        "parameters": _metric_parameters(with_range=True),
        "security": [{}, READ_SECURITY],
        "responses": {
            "200": _body(_ref("Windows"), "the windows, ordered by start"),
            **_READ_REFUSALS,
            "404": _error("unknown metric, or no such version of it"),
            "422": _error("an invalid id, time or parameter"),
            "503": _UNAVAILABLE,
        },
    }),
    Route("GET", "/v1/metrics/{metric}/{student_id}/latest", lambda api: api.query.latest, {
        "operationId": "latestWindow",
        "summary": "The final window with the largest start",
        "parameters": _metric_parameters(with_range=False),
        "security": [{}, READ_SECURITY],
        "responses": {
            "200": _body(_ref("MetricResult"), "the newest final window"),
            **_READ_REFUSALS,
            "404": _error("unknown metric, or no final window yet"),
            "422": _error("an invalid id or parameter"),
            "503": _UNAVAILABLE,
        },
    }),
    Route("GET", "/healthz", lambda api: api.health, {
        "operationId": "health",
        "summary": "The process is alive and its event loop keeps up",
        "responses": {
            "200": _body(_ref("Health"), "alive"),
            "503": _body(_ref("Health"), "the event loop was blocked for 10 s or more"),
        },
    }),
    Route("GET", "/readyz", lambda api: api.readiness, {
        "operationId": "readiness",
        "summary": "NATS is reachable, the NATS ingest consumer runs and the event store has room",
        "responses": {
            "200": _body(_ref("Health"), "ready"),
            "503": _body(_ref("Health"), "not ready"),
        },
    }),
    Route("GET", "/metrics", lambda api: api.metrics.handle, {
        "operationId": "metrics",
        "summary": "Prometheus metrics: ingest, every group's lag, storage, the process (docs/operations.md)",
        "responses": {
            "200": {"description": "the Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
        },
    }),
    Route("GET", "/openapi.json", lambda api: api.openapi, {
        "operationId": "openapi",
        "summary": "This document",
        "responses": {"200": _body({"type": "object"}, "the OpenAPI 3.1 document")},
    }),
)


def add_routes(app: web.Application, api: A, routes: tuple[Route[A], ...], *, guard: ReadGuard) -> None:
    """Route each of ``routes`` to its handler in ``api`` (a GET answers HEAD too, as aiohttp's
    ``add_get`` does), behind ``guard`` where its operation lists :data:`READ_SECURITY`."""
    for route in routes:
        handler = route.handler(api)
        if READ_SECURITY in route.operation.get("security", ()):
            handler = _guarded(handler, guard)
        if route.method == "GET":
            app.router.add_get(route.path, handler)
        else:
            app.router.add_route(route.method, route.path, handler)


def _guarded(handler: Handler, guard: ReadGuard) -> Handler:
    """``handler`` behind ``guard``: 401 without a valid bearer token, 403 when the path's
    ``student_id`` is not the token's to read; the handler answers everything else."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        reader = guard.reader(bearer_token(request.headers))
        if reader is None:
            return error_response(
                401, "missing or wrong bearer token", field="Authorization",
                headers={"WWW-Authenticate": 'Bearer realm="read"'},
            )
        student_id = request.match_info.get("student_id")
        if student_id is not None and guard.refuses(reader, student_id):
            return error_response(403, "this token may not read this student", field="student_id")
        return await handler(request)

    return guarded


def openapi_paths(routes: tuple[Route[Any], ...] = ROUTES) -> dict[str, Any]:
    """The OpenAPI ``paths`` of ``routes``: path -> method -> operation (fresh copies)."""
    paths: dict[str, Any] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = copy.deepcopy(route.operation)
    return paths
