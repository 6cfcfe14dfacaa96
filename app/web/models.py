"""The HTTP API's bodies, as pydantic models (the OpenAPI document is built from them), and the
helpers every handler answers with.

Every error, whatever its status, has the shape of the contract's 422 answer::

    {"errors": [{"index": -1, "field": "Content-Type", "message": "must be application/json"}]}

``index`` is the event's position in a batch, or -1 when the problem is the request itself (its
headers, its body as a whole, a path or query parameter); ``field`` names what to fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt

from contract.events import MAX_BATCH_EVENTS, Event, FieldError
from contract.registry import MetricDescription, MetricVersion
from contract.results import MetricResult

__all__ = [
    "Accepted",
    "ErrorBody",
    "ErrorItem",
    "EventBatch",
    "Health",
    "MetricListing",
    "Metrics",
    "Windows",
    "error_response",
    "errors_response",
    "json_response",
]


class ErrorItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int = Field(description="the event's position in the batch; -1: the request as a whole")
    field: str = Field(description="dotted path of the field, or the header or parameter to fix")
    message: str


class ErrorBody(BaseModel):
    errors: list[ErrorItem]


class Accepted(BaseModel):
    accepted: int = Field(ge=0, description="events stored now")
    duplicates: int = Field(ge=0, description="events whose event_id was already stored in the last 10 minutes")


class EventBatch(BaseModel):
    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]


class Windows(BaseModel):
    windows: list[MetricResult] = Field(description="ordered by window start (then the key's later parts)")


class VersionListing(BaseModel):
    """One version of a metric, and how far it has come through the stored events."""

    version: PositiveInt
    series: str = Field(
        description="what its KV keys and result subjects call it: the metric's name for version 1, "
        "<metric>_v<version> after"
    )
    complete: bool = Field(
        description="its finals cover every event stored when it started; readers take the newest "
        "complete version unless asked for another"
    )
    started_at: AwareDatetime | None = Field(
        default=None, description="when its first worker started (absent: it ran before versions were tracked)"
    )
    remaining: NonNegativeInt = Field(
        default=0, description="records of the events topic it has still to go through, as its workers last counted"
    )
    completed_at: AwareDatetime | None = None

    @classmethod
    def of(cls, version: MetricVersion) -> VersionListing:
        backfill = version.backfill
        return cls(
            version=version.description.version,
            series=version.description.series,
            complete=version.complete,
            started_at=backfill.started_at if backfill else None,
            remaining=backfill.remaining if backfill else 0,
            completed_at=backfill.completed_at if backfill else None,
        )


class MetricListing(MetricDescription):
    """A metric: its default version's description (the newest complete one), and every version."""

    versions: list[VersionListing] = Field(description="oldest first")


class Metrics(BaseModel):
    metrics: list[MetricListing] = Field(description="by name")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    reason: str | None = Field(
        default=None,
        description="why not ready (absent when ready): NATS not connected, storage full, ...",
    )


def json_response(
    status: int, body: Mapping[str, Any] | BaseModel, headers: Mapping[str, str] | None = None
) -> web.Response:
    text = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body, separators=(",", ":"))
    return web.Response(status=status, text=text, content_type="application/json", headers=headers)


def errors_response(status: int, errors: list[FieldError], headers: Mapping[str, str] | None = None) -> web.Response:
    body = ErrorBody(errors=[ErrorItem(index=e.index, field=e.field, message=e.message) for e in errors])
    return json_response(status, body, headers)


def error_response(
    status: int, message: str, *, field: str = "", headers: Mapping[str, str] | None = None
) -> web.Response:
    """One error about the request as a whole (index -1)."""
    return errors_response(status, [FieldError(-1, field, message)], headers)
