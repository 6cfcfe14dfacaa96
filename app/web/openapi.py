"""The OpenAPI 3.1 document served at ``GET /openapi.json``.

Paths are written here by hand; bodies come from the pydantic models (``contract.events.Event``,
``contract.results``, ``app.web.models``), whose JSON Schema (2020-12) is what OpenAPI 3.1 uses.
Where a model's generated schema says less than the contract (``occurred_at`` is parsed by a
custom validator; optional event fields are absent rather than ``null``; ``game_id`` is required
for game events; the keys some events require in ``data``, and their bounds), :func:`_event_schema`
states the contract. A test checks that every route of the application is described here and
nothing else.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any, Final

from pydantic.json_schema import models_json_schema

from app.web.ingest import MAX_BODY_BYTES
from app.web.models import Accepted, ErrorBody, EventBatch, Health, Windows
from bridges.public.metrics_reader import MAX_KEYED_WINDOWS
from contract.events import MAX_BATCH_EVENTS, MAX_DATA_BYTES, MAX_DATA_NUMBER, Event
from contract.names import ID_PATTERN, METRIC_NAMES
from contract.results import EngagementResult, OutcomesResult, ProgressionResult

__all__ = ["openapi_document"]

_REF: Final = "#/components/schemas/{model}"
_ID_PATTERN: Final = f"^{ID_PATTERN}$"
_JSON: Final = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _body(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}, **extra}


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return _body(_ref("ErrorBody"), description, **extra)


_RETRY_AFTER: Final = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}}
}
_UNAVAILABLE: Final = _error("NATS is unavailable", headers=_RETRY_AFTER)


_COUNT: Final = {"type": "integer", "minimum": 0, "maximum": MAX_DATA_NUMBER}
_AMOUNT: Final = {"type": "number", "minimum": 0, "maximum": MAX_DATA_NUMBER}

# (type, name or None for every name) -> (the rules of keys in data, the keys it must have): the
# data rules of contract.events, which the description also states in words.
_DATA_RULES: Final[dict[tuple[str, str | None], tuple[dict[str, Any], list[str]]]] = {
    ("game", "level_started"): ({"level": _COUNT}, ["level"]),
    ("game", "level_completed"): (
        {"level": _COUNT, "score": _AMOUNT, "duration_ms": _COUNT}, ["level", "score", "duration_ms"]
    ),
    ("game", "level_failed"): ({"level": _COUNT, "duration_ms": _COUNT, "score": _AMOUNT}, ["level", "duration_ms"]),
    ("game", "game_finished"): (
        {"outcome": {"type": "string", "enum": ["win", "loss", "abandon"]}, "score": _AMOUNT, "duration_ms": _COUNT},
        ["outcome", "score", "duration_ms"],
    ),
    ("engagement", "heartbeat"): ({"seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600}}, ["seconds"]),
    ("interaction", None): ({"correct": {"type": "boolean"}}, []),
}


def _data_rule(type_: str, name: str | None, keys: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """``if`` the event is of ``type_`` (and ``name``) ``then`` its data holds ``keys``."""
    condition: dict[str, Any] = {"properties": {"type": {"const": type_}}, "required": ["type"]}
    if name is not None:
        condition["properties"]["name"] = {"const": name}
        condition["required"].append("name")
    data: dict[str, Any] = {"properties": copy.deepcopy(keys)}
    if required:
        data["required"] = required
    # An absent data is {} to the contract, so a data with required keys must be there.
    then: dict[str, Any] = {"properties": {"data": data}}
    if required:
        then["required"] = ["data"]
    return {"if": condition, "then": then}


def _event_schema(generated: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(generated)
    schema["description"] = (
        "One event. Optional fields are left out, never null. `data` is at most "
        f"{MAX_DATA_BYTES} bytes as compact JSON, and some events require keys in it: "
        "game/level_started: level; game/level_completed: level, score, duration_ms; "
        "game/level_failed: level, duration_ms (score optional); game/game_finished: outcome, "
        "score, duration_ms; engagement/heartbeat: seconds (0 < seconds <= 3600); "
        "interaction/*: correct optional (boolean); level and duration_ms are integers and "
        f"score a number, each >= 0 and <= {MAX_DATA_NUMBER}. Every other number anywhere in "
        f"`data`, in nested objects and arrays too, must be finite and >= -{MAX_DATA_NUMBER} and "
        f"<= {MAX_DATA_NUMBER} (2**53, what a double holds exactly); one out of range is refused "
        "at its dotted path, e.g. data.items.3 for the fourth element of the array items. "
        "`occurred_at` may be at most 5 minutes ahead of the server's clock."
    )
    properties = schema["properties"]
    for name, prop in properties.items():
        options = prop.get("anyOf")
        if options and {"type": "null"} in options:
            (kept,) = [option for option in options if option != {"type": "null"}]
            properties[name] = {**kept, "title": prop.get("title", name)}
    properties["occurred_at"] = {
        "title": "Occurred At",
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 with a UTC offset; the event time",
    }
    schema["if"] = {"properties": {"type": {"const": "game"}}, "required": ["type"]}
    schema["then"] = {"required": ["game_id"]}
    # One condition per event with data rules; allOf because a schema holds a single if/then.
    schema["allOf"] = [_data_rule(type_, name, *rules) for (type_, name), rules in _DATA_RULES.items()]
    return schema


def _metric_parameters(*, with_range: bool) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": "metric", "in": "path", "required": True, "schema": {"type": "string", "enum": list(METRIC_NAMES)},
         "description": "unknown metrics answer 404"},
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
        {"name": "game_id", "in": "query", "required": False, "description": "outcomes only: one game",
         "schema": {"type": "string", "pattern": _ID_PATTERN}}
    )
    return parameters


def _paths(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "/v1/events": {
            "post": {
                "operationId": "ingestEvents",
                "summary": "Store one event or a batch; answered once JetStream stored every event",
                "security": [{}, {"bearerAuth": []}],
                "requestBody": {
                    "required": True,
                    "description": f"at most {MAX_BODY_BYTES} bytes and {MAX_BATCH_EVENTS} events",
                    "content": {_JSON: {"schema": {"oneOf": [_ref("Event"), _ref("EventBatch")]}}},
                },
                "responses": {
                    "202": _body(_ref("Accepted"), "every event is stored (or was already)"),
                    "400": _error("the body is not JSON"),
                    "401": _error("INGEST_TOKEN is set and the bearer token is missing or wrong"),
                    "413": _error(f"the body is larger than {MAX_BODY_BYTES} bytes"),
                    "415": _error("the Content-Type is not application/json"),
                    "422": _error("an event or the envelope breaks the contract; nothing was stored"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/v1/metrics/{metric}/{student_id}": {
            "get": {
                "operationId": "listWindows",
                "summary": "A student's final windows by start: from <= start < to (include_open: open ones too)",
                "description": (
                    f"A range with from of at most {MAX_KEYED_WINDOWS:,} windows is read by key: its cost is the range's, "
                    "whatever the student's history. Without from, or over a longer range, every window "
                    "the bucket holds for the student is read."
                ),
                "parameters": _metric_parameters(with_range=True),
                "responses": {
                    "200": _body(_ref("Windows"), "the windows, ordered by start"),
                    "404": _error("unknown metric"),
                    "422": _error("an invalid id, time or parameter"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/v1/metrics/{metric}/{student_id}/latest": {
            "get": {
                "operationId": "latestWindow",
                "summary": "The final window with the largest start",
                "parameters": _metric_parameters(with_range=False),
                "responses": {
                    "200": _body(result, "the newest final window"),
                    "404": _error("unknown metric, or no final window yet"),
                    "422": _error("an invalid id or parameter"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "The process is alive",
                "responses": {"200": _body(_ref("Health"), "alive")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readiness",
                "summary": "NATS is reachable and the NATS ingest consumer runs",
                "responses": {
                    "200": _body(_ref("Health"), "ready"),
                    "503": _body(_ref("Health"), "not ready"),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": _body({"type": "object"}, "the OpenAPI 3.1 document")},
            }
        },
    }


@cache
def _document() -> dict[str, Any]:
    models = [
        (Event, "validation"),
        (EventBatch, "validation"),
        (Accepted, "serialization"),
        (ErrorBody, "serialization"),
        (Windows, "serialization"),
        (Health, "serialization"),
        (ProgressionResult, "serialization"),
        (EngagementResult, "serialization"),
        (OutcomesResult, "serialization"),
    ]
    _, generated = models_json_schema(models, ref_template=_REF)  # type: ignore[arg-type]
    schemas = generated["$defs"]
    schemas["Event"] = _event_schema(schemas["Event"])
    result = copy.deepcopy(schemas["Windows"]["properties"]["windows"]["items"])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "learning-streams",
            "version": "1.0.0",
            "description": (
                "Ingest learning events and read windowed per-student metrics. Every error has "
                'the shape {"errors": [{"index", "field", "message"}]}; index -1 means the '
                "request as a whole."
            ),
        },
        "paths": _paths(result),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "required by POST /v1/events when the server sets INGEST_TOKEN",
                }
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """The document (a fresh copy: callers may not change the cached one)."""
    return copy.deepcopy(_document())
