"""The OpenAPI 3.1 document served at ``GET /openapi.json``.

Its ``paths`` come from the route table (:data:`app.web.routes.ROUTES`), which the aiohttp
router is built from too; the schemas they refer to by name come from the pydantic models
(``contract.events.Event``, ``contract.results``, ``app.web.models``), whose JSON Schema
(2020-12) is what OpenAPI 3.1 uses.

Where a model's generated schema says less than the contract (``occurred_at`` is parsed by a
custom validator; optional event fields are absent rather than ``null``; ``game_id`` is required
for game events; the keys some events require in ``data``, and their bounds),
:func:`contract.schemas.event_schema` states the contract, as it does for the files of
``schemas/``.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from app.web.models import Accepted, ErrorBody, EventBatch, Health, Metrics, Windows
from app.web.routes import SCHEMA_REF, openapi_paths
from contract.events import Event
from contract.results import MetricResult
from contract.schemas import event_schema

__all__ = ["openapi_document"]


@cache
def _document() -> dict[str, Any]:
    models = [
        (Event, "validation"),
        (EventBatch, "validation"),
        (Accepted, "serialization"),
        (ErrorBody, "serialization"),
        (Windows, "serialization"),
        (Health, "serialization"),
        (Metrics, "serialization"),
        (MetricResult, "serialization"),
    ]
    _, generated = models_json_schema(models, ref_template=SCHEMA_REF)  # type: ignore[arg-type]
    schemas = generated["$defs"]
    schemas["Event"] = event_schema(schemas["Event"])
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

