"""``GET /v1/metrics[/{metric}/{student_id}[/latest]]``: the metrics that run, and their windows.

- ``/v1/metrics`` lists the metrics the registry knows (each worker publishes its metric's
  description there when it starts; :mod:`contract.registry`), each with its default version's
  description (the newest complete one) and every version, complete or how far its backfill is.
- ``?version=<n>`` reads that version of the metric; without it, the default version.
- ``?from=<RFC 3339>&to=<RFC 3339>`` select final windows by start: ``from <= start < to``; either
  may be left out. A metric keyed by more than the student takes its later key fields as
  parameters, each narrowing the windows to one value (``&game_id=`` for a metric keyed by student
  and game; without it, every game's windows). ``&include_open=true`` adds the provisional values (``"final": false``) of windows
  still open, which the workers write when ``METRICS_UPDATE_SECONDS`` is set; by default a client
  sees final values only, as before that setting existed.
- ``/latest`` answers the final window with the largest start, or 404.

Ids are checked before they get anywhere near a key: the path and query are decoded by then, so
``%2A`` arrives as ``*``, and a ``*``, ``>`` or ``.`` would address other students' keys. Unknown
metric (no worker has published its description): 404, listing the known ones. Bad id, time or
parameter: 422 with the ingest error shape. NATS down: 503.
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

from app.web.models import MetricListing, Metrics, VersionListing, error_response, errors_response, json_response
from bridges.public.metrics_reader import MetricEntry, MetricsReader
from contract.events import FieldError
from contract.names import ID_RULE, is_id
from contract.registry import MetricDescription, MetricVersion, default_version
from tables.errors import BrokenError, ClosedError, InvalidEventError
from tables.event_time import parse_event_time
from tables.micros import MICROS_PER_SECOND

__all__ = ["QueryHandlers"]

log = logging.getLogger(__name__)

#: the spellings of a boolean query parameter (OpenAPI's, for a schema of type boolean)
_BOOLEANS: Final = ("true", "false")
#: the parameters bounding window starts
_RANGE: Final = ("from", "to")


@dataclass(frozen=True)
class _Query:
    metric: str
    student_id: str
    #: the key's later fields the request narrows, field -> id
    parts: Mapping[str, str]
    start_from: int | None
    start_to: int | None
    include_open: bool = False
    #: the metric's version the query reads
    version: int = 1


class QueryHandlers:
    """The two query endpoints over one :class:`MetricsReader` (started by the caller)."""

    def __init__(self, reader: MetricsReader, *, retry_after: int = 2) -> None:
        self._reader = reader
        self._retry_after = str(retry_after)

    async def metrics(self, request: web.Request) -> web.Response:
        """Every metric the registry knows, by name: its default version's description, and its
        versions."""
        try:
            catalog = await self._reader.registry.catalog()
        except (BrokenError, ClosedError) as exc:
            return self._unavailable(exc)
        return json_response(200, Metrics(metrics=[_listing(versions) for versions in catalog.values() if versions]))

    async def windows(self, request: web.Request) -> web.Response:
        try:
            query = await self._parse(request, allowed=("from", "to", "include_open"))
            if isinstance(query, web.Response):
                return query
            entries = await self._reader.windows(
                query.metric,
                query.student_id,
                parts=query.parts,
                start_from=query.start_from,
                start_to=query.start_to,
                include_open=query.include_open,
                version=query.version,
            )
        except (BrokenError, ClosedError) as exc:
            return self._unavailable(exc)
        return json_response(200, {"windows": [v for e in entries if (v := _value(e)) is not None]})

    async def latest(self, request: web.Request) -> web.Response:
        try:
            query = await self._parse(request, allowed=())
            if isinstance(query, web.Response):
                return query
            entry = await self._reader.latest(query.metric, query.student_id, parts=query.parts, version=query.version)
        except (BrokenError, ClosedError) as exc:
            return self._unavailable(exc)
        value = _value(entry) if entry is not None else None
        if value is None:
            narrowed = "".join(f" in {part}" for part in query.parts.values())
            return error_response(404, f"no final window yet for {query.metric} of {query.student_id}{narrowed}")
        return json_response(200, value)

    async def _parse(self, request: web.Request, *, allowed: tuple[str, ...]) -> _Query | web.Response:
        """The query the request asks, or the error answer it gets (the metric's later key fields
        are allowed parameters too)."""
        metric = request.match_info["metric"]
        described = await self._reader.registry.get(metric) if is_id(metric) else None
        if described is None:
            known = ", ".join(self._reader.registry.known()) or "none yet"
            return error_response(404, f"unknown metric; known: {known}", field="metric")
        version = _version(request.query.getall("version", []))
        if isinstance(version, FieldError):
            return errors_response(422, [version])
        description = described if version is None else await self._reader.registry.get(metric, version)
        if description is None:
            versions = (await self._reader.registry.catalog()).get(metric, [])
            known_versions = ", ".join(str(v.description.version) for v in versions)
            return error_response(404, f"{metric} has no version {version}; known: {known_versions}", field="version")
        return _parse(request, description, allowed=(*allowed, "version"))

    def _unavailable(self, exc: Exception) -> web.Response:
        log.warning("query answered 503: %s", exc)
        return error_response(503, "NATS is unavailable; retry later", headers={"Retry-After": self._retry_after})


def _parse(request: web.Request, description: MetricDescription, *, allowed: tuple[str, ...]) -> _Query | web.Response:
    """The query the request asks of the metric ``description`` describes, or the error answer."""
    errors: list[FieldError] = []
    student_id = request.match_info["student_id"]
    if not is_id(student_id):
        errors.append(FieldError(-1, "student_id", ID_RULE))
    later = description.key_fields[1:]
    # Listed in errors as a reader thinks of them: the range, the key's later fields, the rest.
    ranged = tuple(name for name in allowed if name in _RANGE)
    others = tuple(name for name in allowed if name not in _RANGE)
    params = _single_params(request.query, (*ranged, *later, *others), errors)
    parts = {name: params[name] for name in later if name in params}
    for name, value in parts.items():
        if not is_id(value):
            errors.append(FieldError(-1, name, ID_RULE))
    start_from = _window_bound(params, "from", errors)
    start_to = _window_bound(params, "to", errors)
    if start_from is not None and start_to is not None and start_to < start_from:
        errors.append(FieldError(-1, "to", "must not be before from"))
    include_open = params.get("include_open", "false")
    if include_open not in _BOOLEANS:
        errors.append(FieldError(-1, "include_open", "must be true or false"))
    if errors:
        return errors_response(422, errors)
    return _Query(
        description.name, student_id, parts, start_from, start_to, include_open == "true", description.version
    )


def _version(given: list[str]) -> int | None | FieldError:
    """The ``version`` parameter: None when absent, else a whole number >= 1 (or the error)."""
    if not given:
        return None
    if len(given) > 1:
        return FieldError(-1, "version", "must be given once")
    raw = given[0]
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1 or len(raw) > 9:
        return FieldError(-1, "version", "must be a whole number >= 1")
    return int(raw)


def _listing(versions: list[MetricVersion]) -> MetricListing:
    """One metric of ``GET /v1/metrics``: its default version's description, then its versions."""
    chosen = default_version(versions)
    assert chosen is not None, "a metric has a version"
    return MetricListing(**dict(chosen.description), versions=[VersionListing.of(version) for version in versions])


def _single_params(query: MultiMapping[str], allowed: tuple[str, ...], errors: list[FieldError]) -> Mapping[str, str]:
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
