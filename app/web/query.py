"""``GET /v1/metrics/{metric}/{student_id}[/latest]``: windows from the ``metrics`` KV bucket.

- ``?from=<RFC 3339>&to=<RFC 3339>`` select final windows by start: ``from <= start < to``; either
  may be left out. ``&game_id=`` narrows ``outcomes`` to one game (without it, every game's
  windows). ``&include_open=true`` adds the provisional values (``"final": false``) of windows
  still open, which the workers write when ``METRICS_UPDATE_SECONDS`` is set; by default a client
  sees final values only, as before that setting existed.
- ``/latest`` answers the final window with the largest start, or 404.

Ids are checked before they get anywhere near a key: the path and query are decoded by then, so
``%2A`` arrives as ``*``, and a ``*``, ``>`` or ``.`` would address other students' keys. Unknown
metric: 404. Bad id, time or parameter: 422 with the ingest error shape. NATS down: 503.
Values are returned as the workers stored them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from multidict import MultiMapping

from app.web.models import error_response, errors_response, json_response
from bridges.public.metrics_reader import MetricEntry, MetricsReader
from contract.events import FieldError
from contract.names import ID_RULE, METRIC_NAMES, is_id
from tables.errors import BrokenError, ClosedError, InvalidEventError
from tables.event_time import parse_event_time
from tables.micros import MICROS_PER_SECOND

__all__ = ["QueryHandlers"]

log = logging.getLogger(__name__)

#: the spellings of a boolean query parameter (OpenAPI's, for a schema of type boolean)
_BOOLEANS: Final = ("true", "false")


@dataclass(frozen=True)
class _Query:
    metric: str
    student_id: str
    game_id: str | None
    start_from: int | None
    start_to: int | None
    include_open: bool = False


class QueryHandlers:
    """The two query endpoints over one :class:`MetricsReader` (started by the caller)."""

    def __init__(self, reader: MetricsReader, *, retry_after: int = 2) -> None:
        self._reader = reader
        self._retry_after = str(retry_after)

    async def windows(self, request: web.Request) -> web.Response:
        query = _parse(request, allowed=("from", "to", "game_id", "include_open"))
        if isinstance(query, web.Response):
            return query
        try:
            entries = await self._reader.windows(
                query.metric, query.student_id, game_id=query.game_id,
                start_from=query.start_from, start_to=query.start_to, include_open=query.include_open,
            )
        except (BrokenError, ClosedError) as exc:
            return self._unavailable(exc)
        return json_response(200, {"windows": [v for e in entries if (v := _value(e)) is not None]})

    async def latest(self, request: web.Request) -> web.Response:
        query = _parse(request, allowed=("game_id",))
        if isinstance(query, web.Response):
            return query
        try:
            entry = await self._reader.latest(query.metric, query.student_id, game_id=query.game_id)
        except (BrokenError, ClosedError) as exc:
            return self._unavailable(exc)
        value = _value(entry) if entry is not None else None
        if value is None:
            which = f"{query.metric} of {query.student_id}" + (f" in {query.game_id}" if query.game_id else "")
            return error_response(404, f"no final window yet for {which}")
        return json_response(200, value)

    def _unavailable(self, exc: Exception) -> web.Response:
        log.warning("query answered 503: %s", exc)
        return error_response(503, "NATS is unavailable; retry later", headers={"Retry-After": self._retry_after})


def _parse(request: web.Request, *, allowed: tuple[str, ...]) -> _Query | web.Response:
    """The query the request asks, or the error answer it gets."""
    metric = request.match_info["metric"]
    if metric not in METRIC_NAMES:
        return error_response(404, f"unknown metric; known: {', '.join(METRIC_NAMES)}", field="metric")
    errors: list[FieldError] = []
    student_id = request.match_info["student_id"]
    if not is_id(student_id):
        errors.append(FieldError(-1, "student_id", ID_RULE))
    params = _single_params(request.query, allowed, errors)
    game_id = params.get("game_id")
    if game_id is not None:
        if metric != "outcomes":
            errors.append(FieldError(-1, "game_id", "applies to outcomes only"))
        elif not is_id(game_id):
            errors.append(FieldError(-1, "game_id", ID_RULE))
    start_from = _window_bound(params, "from", errors)
    start_to = _window_bound(params, "to", errors)
    if start_from is not None and start_to is not None and start_to < start_from:
        errors.append(FieldError(-1, "to", "must not be before from"))
    include_open = params.get("include_open", "false")
    if include_open not in _BOOLEANS:
        errors.append(FieldError(-1, "include_open", "must be true or false"))
    if errors:
        return errors_response(422, errors)
    return _Query(metric, student_id, game_id, start_from, start_to, include_open == "true")


def _single_params(
    query: MultiMapping[str], allowed: tuple[str, ...], errors: list[FieldError]
) -> Mapping[str, str]:
    params: dict[str, str] = {}
    refused: set[str] = set()
    for name, value in query.items():  # items(), not iteration: that yields each name once
        if name in refused:
            continue
        if name not in allowed:
            errors.append(FieldError(-1, name, f"not allowed; parameters: {', '.join(allowed)}"))
            refused.add(name)
        elif name in params:
            errors.append(FieldError(-1, name, "must be given once"))
            refused.add(name)
            del params[name]
        else:
            params[name] = value
    return params


def _window_bound(params: Mapping[str, str], name: str, errors: list[FieldError]) -> int | None:
    """The smallest whole second at or after the time: window starts are whole seconds."""
    raw = params.get(name)
    if raw is None:
        return None
    try:
        micros = parse_event_time(raw, name)
    except InvalidEventError as exc:
        errors.append(FieldError(-1, name, f"must be RFC 3339 with a UTC offset: {exc.problem}"))
        return None
    return -(-micros // MICROS_PER_SECOND)


def _value(entry: MetricEntry) -> Any:
    try:
        value = json.loads(entry.value)
    except ValueError:
        log.warning("metrics key %s holds no JSON; left out of the answer", entry.key)
        return None
    return value
