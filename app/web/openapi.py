"""The OpenAPI 3.1 document served at ``GET /openapi.json``.

Its ``paths`` come from the route table (:data:`app.web.routes.ROUTES`), which the aiohttp
router is built from too; the schemas they refer to by name come from the pydantic models
(``contract.events.Event``, ``contract.results``, ``app.web.models``), whose JSON Schema
(2020-12) is what OpenAPI 3.1 uses.

Where a model's generated schema says less than the contract (``occurred_at`` is parsed by a
custom validator; optional event fields are absent rather than ``null``; ``game_id`` is required
for game events; the keys some events require in ``data``, and their bounds), :func:`_event_schema`
states the contract.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any, Final

from pydantic.json_schema import models_json_schema

from app.web.models import Accepted, ErrorBody, EventBatch, Health, Windows
from app.web.routes import SCHEMA_REF, openapi_paths
from contract.events import MAX_DATA_BYTES, MAX_DATA_NUMBER, Event
from contract.results import EngagementResult, OutcomesResult, ProgressionResult

__all__ = ["openapi_document"]

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
    _, generated = models_json_schema(models, ref_template=SCHEMA_REF)  # type: ignore[arg-type]
    schemas = generated["$defs"]
    schemas["Event"] = _event_schema(schemas["Event"])
    # contract.results.MetricResult, one window's result of any metric: a name for what
    # Windows lists, so an operation can answer one.
    schemas["MetricResult"] = copy.deepcopy(schemas["Windows"]["properties"]["windows"]["items"])
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
        "paths": openapi_paths(),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "required by POST /v1/events when the server sets INGEST_TOKEN",
                },
                "readAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "required by the query API (and the dashboard) when the server sets READ_TOKEN, "
                        "or READ_ACCESS (a deployment's own tokens, which may each read some students only)"
                    ),
                },
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """The document (a fresh copy: callers may not change the cached one)."""
    return copy.deepcopy(_document())
