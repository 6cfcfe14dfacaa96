"""Reading, from the streams themselves, how far arrival time has progressed on each partition.

An event's arrival is when the platform first stored it: the stored time of its message in the
NATS ingest stream (carried to the events topic by ingest), or, for HTTP ingest, the stored time
of its message in the events topic. A worker's windows close when nothing that is still to come
can belong in them, so the worker needs promises of the form "every record of partition ``p``
after offset ``L`` arrived at or after ``T``" (:class:`~tables.watermark.Promise`). One reading
gives one per partition, from two JetStream facts, in this order:

1. **The ingest stream.** It is a work queue: a message stays until ingest has stored its event
   in the events topic (or dead-lettered it) and acked it. So its oldest message's stored time
   (``first_ts``), or the server's clock (``ts``) when it is empty, is a time before which every
   NATS-ingested event is already in the events topic. A deployment without the stream (no NATS
   ingest) has no such bound.
2. **Each partition's stream**, read after (1): its last sequence ``L`` and the server's clock
   ``ts``. Every later record is either an HTTP-ingested event, stored after ``ts``, or a
   NATS-ingested event that was not yet forwarded at (1), whose arrival is therefore at or after
   the bound of (1).

So ``T`` = min(partition ``ts``, ingest bound) - :data:`TOLERANCE`. Each bound is compared only
with times from the same clock (the partition's server for HTTP arrivals, the ingest stream's
for NATS arrivals), so worker clocks play no part; the tolerance covers a message whose stored
time was taken just before the server answered the read. A backlog anywhere upstream (a stopped
web process, the ingest bridge behind) holds ``T`` back until it is worked off: late is decided
by arrival, and the windows wait for the events that arrived in time.

Ingest makes the same promise in-band (:class:`IngestWatermark`): read before a batch is written,
min(ingest bound, the ingest server's ``ts``) - :data:`TOLERANCE` holds for every record written
after it by anyone (HTTP records are stored later still; NATS records come from messages still
in the ingest stream then, or stored after). Stamped on each batch record, it moves a worker's
watermark as it works off a backlog or replays one, where a reading here only promises about the
end of the stream. That needs the servers of a cluster to agree to within the tolerance.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, Final

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from bridges.naming import Naming
from bridges.transport.session import TransportSession
from tables.errors import BrokenError
from tables.watermark import Promise

__all__ = ["ArrivalClock", "IngestWatermark", "TOLERANCE"]

log = logging.getLogger(__name__)

#: seconds subtracted from every promise (see the module docstring); windows of an idle stream
#: close this much later than their end + grace, plus the time between readings
TOLERANCE: Final = 0.25
_REQUEST_TIMEOUT: Final = 2.0
_NOT_FOUND: Final = 10059  # JetStream's error code for "stream not found"
_RFC3339: Final = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z")


class ArrivalClock:
    """The ``ArrivalClock`` of ``agents.windowed`` over a worker's transport session.

    Args:
        session: the worker's NATS session (opened by whoever owns it; read only while open).
        naming: the deployment's faust names (which stream holds which topic partition).
        ingest_stream: the NATS ingest work-queue stream (``<PREFIX>_INGEST``).
    """

    def __init__(self, session: TransportSession, *, naming: Naming, ingest_stream: str) -> None:
        self._session = session
        self._naming = naming
        self._ingest_stream = ingest_stream

    async def read(self, topic: str, partitions: Collection[int]) -> dict[int, Promise]:
        """A promise for each partition of ``topic`` whose stream exists (see the module docstring).

        Raises:
            BrokenError: NATS did not answer, or answered with an error other than "not found".
        """
        client = self._session.client
        ingest = await _stream_info(client, self._ingest_stream)
        ingest_bound = None if ingest is None else _ingest_bound(ingest)
        names = [self._naming.stream(topic, partition) for partition in partitions]
        infos = await asyncio.gather(*(_stream_info(client, name) for name in names))
        promises: dict[int, Promise] = {}
        for partition, info in zip(partitions, infos, strict=True):
            if info is None:
                continue
            bound = _timestamp(info["ts"])
            if ingest_bound is not None:
                bound = min(bound, ingest_bound)
            promises[partition] = Promise(int(info["state"]["last_seq"]), bound - TOLERANCE)
        return promises



class IngestWatermark:
    """The promise ingest stamps on each batch it writes (see the module docstring), kept fresh.

    Read every ``interval`` seconds by a task of its own; :meth:`current` is the newest reading
    (None before the first, or while the ingest stream does not exist). A stale value is still
    true, only less useful. An async context manager.

    Args:
        client: a connected nats-py client (not owned).
        ingest_stream: the NATS ingest work-queue stream (``<PREFIX>_INGEST``).
    """

    def __init__(self, client: Client, *, ingest_stream: str, interval: float = 0.5) -> None:
        self._client = client
        self._ingest_stream = ingest_stream
        self._interval = interval
        self._current: float | None = None
        self._task: asyncio.Task[None] | None = None

    def current(self) -> float | None:
        return self._current

    async def start(self) -> IngestWatermark:
        """Read once (so the first batches carry a watermark), then keep reading."""
        if self._task is None:
            await self._read()
            self._task = asyncio.create_task(self._run(), name="ingest-watermark")
        return self

    async def close(self) -> None:
        """Stop reading. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def __aenter__(self) -> IngestWatermark:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)  # a period, not a wait for a condition
            try:
                await self._read()
            except BrokenError as exc:  # NATS away: the last value stays true; read again later
                log.debug("reading the ingest watermark failed: %s", exc)

    async def _read(self) -> None:
        info = await _stream_info(self._client, self._ingest_stream)
        if info is None:
            self._current = None
            return
        bound = min(_ingest_bound(info), _timestamp(info["ts"])) - TOLERANCE
        if self._current is None or bound > self._current:
            self._current = bound


async def _stream_info(client: Client, stream: str) -> dict[str, Any] | None:
    """The stream's info as the server sends it (nats-py's model drops ``ts`` and ``first_ts``);
    None when the stream does not exist."""
    try:
        reply = await client.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=_REQUEST_TIMEOUT)
    except (NatsTimeoutError, NoRespondersError) as exc:
        raise BrokenError(f"reading stream {stream} for the arrival clock: {exc!r}") from None
    info = json.loads(reply.data)
    error = info.get("error")
    if error is not None:
        if error.get("err_code") == _NOT_FOUND:
            return None
        raise BrokenError(f"reading stream {stream} for the arrival clock: {error.get('description')}")
    return info


def _ingest_bound(info: dict[str, Any]) -> float:
    state = info["state"]
    if not state.get("messages"):
        return _timestamp(info["ts"])
    return _timestamp(state["first_ts"])


def _timestamp(text: str) -> float:
    """Epoch seconds of the server's RFC 3339 UTC timestamps (nanosecond fractions)."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise BrokenError(f"the server sent a timestamp this client cannot read: {text!r}")
    whole = datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC).timestamp()
    fraction = match.group(2) or "0"
    return whole + int(fraction) / 10 ** len(fraction)
