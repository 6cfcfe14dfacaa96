"""``POST /v1/events``: one event or ``{"events": [...]}``, stored in JetStream before the answer.

Checks, in the order a request meets them (the first that fails answers):

====  ===============================================================================
401   ``INGEST_TOKEN`` is set and ``Authorization: Bearer <token>`` is missing or wrong
      (compared in constant time, so the answer's timing says nothing about the token)
415   ``Content-Type`` is not ``application/json`` (a ``charset`` other than UTF-8 too)
413   ``Content-Length`` says more than 1 MiB, or the body turns out longer while it is
      read (chunked uploads have no length to check up front); the rest is not read
503   ``INGEST_CONCURRENCY`` requests are being served already; with ``Retry-After``, and
      the connection is closed (the body is not read)
408   the body did not arrive within ``HTTP_BODY_SECONDS``; the connection is closed
400   the body is not JSON (``message`` gives the line and column)
422   the contract refuses an event or the envelope; *every* problem is listed and
      nothing is stored
503   NATS is unreachable, or JetStream did not acknowledge every event in time, or its
      storage is full (answered at once, the message says so); with ``Retry-After``.
      Some events may be stored: retrying the whole batch is safe, as each ``event_id``
      is stored once and its repeats are counted as duplicates
202   ``{"accepted": n, "duplicates": d}`` once JetStream stored every event
====  ===============================================================================

The bounds keep a slow or hostile client from holding the process's memory: a request holds up
to 1 MiB while it is served, at most ``INGEST_CONCURRENCY`` are served at once, and none for
longer than ``HTTP_BODY_SECONDS`` to upload. A large body is parsed and validated in a worker
thread, so the event loop (every other request, the dashboard's streams) is not held up by it
for more than the interpreter's thread switch interval at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from app.access import BearerToken, bearer_token
from app.capacity import Capacity
from app.web.models import Accepted, error_response, errors_response, json_response
from bridges.connection import Secret
from bridges.public.event_sink import EventSink
from contract.events import Event, InvalidEvents, MalformedJSON, validate_batch
from tables.errors import BrokenError, ClosedError, StorageFull

__all__ = ["IngestCounts", "IngestHandler", "MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 1024 * 1024
_CHUNK: Final = 64 * 1024
#: bodies up to this size are validated on the event loop: a hop to a thread would cost more
#: than the validation (a few events); larger ones go to a thread
_INLINE_BODY_BYTES: Final = 32 * 1024


@dataclass
class IngestCounts:
    """What HTTP ingest did since start, for ``/metrics``: events stored, events the streams held
    already, and requests refused by the status they were answered with."""

    accepted: int = 0
    duplicates: int = 0
    refused: Counter[int] = field(default_factory=Counter)


class IngestHandler:
    """The request handler of ``POST /v1/events``.

    Args:
        sink: where the events go (started and closed by the caller).
        token: when set, the bearer token every request must carry.
        retry_after: seconds a 503 answer asks the client to wait.
        body_seconds: how long a body may take to arrive (``HTTP_BODY_SECONDS``).
        concurrency: requests served at once (``INGEST_CONCURRENCY``).
        clock: the server's wall clock (the "5 minutes ahead" rule of ``occurred_at``).
    """

    def __init__(
        self,
        sink: EventSink,
        *,
        token: Secret | None = None,
        retry_after: int = 2,
        max_body_bytes: int = MAX_BODY_BYTES,
        body_seconds: float = 30.0,
        concurrency: int = 16,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sink = sink
        self._token = BearerToken(token) if token is not None else None
        self._retry_after = str(retry_after)
        self._max_body = max_body_bytes
        self._body_seconds = body_seconds
        self.capacity = Capacity(concurrency)
        self._clock = clock
        self.counts = IngestCounts()

    async def handle(self, request: web.Request) -> web.Response:
        response = await self._answer(request)
        if response.status >= 400:
            self.counts.refused[response.status] += 1
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        if self._token is not None and not self._authorized(request):
            return error_response(
                401, "missing or wrong bearer token", field="Authorization",
                headers={"WWW-Authenticate": 'Bearer realm="ingest"'},
            )
        if not _is_json(request):
            return error_response(415, "must be application/json", field="Content-Type")
        declared = request.content_length
        if declared is not None and declared > self._max_body:
            return self._too_large()
        with self.capacity.slot() as admitted:
            if not admitted:
                return self._closing(error_response(
                    503, f"{self.capacity.limit} ingest requests are being served already; retry later",
                    headers={"Retry-After": self._retry_after},
                ))  # fmt: skip
            return await self._take(request, declared)

    async def _take(self, request: web.Request, declared: int | None) -> web.Response:
        log.debug("ingest request: reading a body of %s bytes", "unknown" if declared is None else declared)
        try:
            async with asyncio.timeout(self._body_seconds):
                body = await self._read_body(request)
        except ConnectionResetError:  # the client went away mid-body: nobody reads this answer
            return self._closing(error_response(400, "the connection was lost before the body arrived", field="(body)"))
        except TimeoutError:
            return await _hang_up(request, error_response(
                408, f"the body did not arrive within {self._body_seconds:g} seconds", field="(body)"
            ))  # fmt: skip
        if body is None:
            return self._too_large()
        try:
            events = await self._validate(body)
        except MalformedJSON as exc:
            return error_response(400, str(exc))
        except InvalidEvents as exc:
            return errors_response(422, exc.errors)
        try:
            result = await self._sink.publish(events)
        except StorageFull as exc:
            # Logged once by the sink when the state begins; each refusal only here, quietly.
            log.debug("ingest of %d events answered 503: %s", len(events), exc)
            return error_response(
                503, "storage full: the event store has no room; retry the whole request later",
                headers={"Retry-After": self._retry_after},
            )
        except (BrokenError, ClosedError) as exc:
            log.warning("ingest of %d events answered 503: %s", len(events), exc)
            return error_response(
                503, "NATS is unavailable; retry the whole request later",
                headers={"Retry-After": self._retry_after},
            )
        self.counts.accepted += result.accepted
        self.counts.duplicates += result.duplicates
        return json_response(202, Accepted(accepted=result.accepted, duplicates=result.duplicates))

    def _authorized(self, request: web.Request) -> bool:
        assert self._token is not None
        given = bearer_token(request.headers)
        return given is not None and self._token.matches(given)

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The body, or None as soon as it exceeds the limit (the rest is never read)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _validate(self, body: bytes) -> list[Event]:
        """The body's events (all or none, as :func:`validate_batch` says), validated in a worker
        thread when the body is large. The loop's default executor is bounded, and at most
        ``INGEST_CONCURRENCY`` requests get here at once."""
        now = self._clock()
        if len(body) <= _INLINE_BODY_BYTES:
            return validate_batch(body, now=now)
        return await asyncio.to_thread(validate_batch, body, now=now)

    def _too_large(self) -> web.Response:
        return self._closing(error_response(413, f"must be at most {self._max_body} bytes", field="(body)"))

    @staticmethod
    def _closing(response: web.Response) -> web.Response:
        """``response``, after which the connection is closed: the unread rest of the upload would
        otherwise be read (and thrown away) to keep the connection alive; closing it is cheaper.
        aiohttp still reads and drops what comes for its lingering time (``HTTP_BODY_SECONDS``,
        :mod:`app.web.doors`), so a client still sending can read the answer."""
        response.force_close()
        return response


async def _hang_up(request: web.Request, response: web.Response) -> web.Response:
    """Send ``response`` and close the connection at once: its client stopped sending, so the rest
    of its body, which aiohttp would otherwise wait out for its lingering time, is not coming."""
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()  # the answer is flushed before the socket closes
    return response


def _is_json(request: web.Request) -> bool:
    if "Content-Type" not in request.headers or request.content_type != "application/json":
        return False
    charset = request.charset
    return charset is None or charset.lower() in ("utf-8", "utf8")
