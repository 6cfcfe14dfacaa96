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
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, Final

from nats.errors import NoRespondersError, TimeoutError as NatsTimeoutError

from bridges.naming import Naming
from bridges.transport.session import TransportSession
from tables.errors import BrokenError
from tables.watermark import Promise

__all__ = ["ArrivalClock", "TOLERANCE"]

#: seconds subtracted from every promise (see the module docstring); windows of an idle stream
#: close this much later than their end + grace, plus the time between readings
TOLERANCE: Final = 0.25
_REQUEST_TIMEOUT: Final = 2.0
_NOT_FOUND: Final = 10059  # JetStream's error code for "stream not found"
_RFC3339: Final = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z")


class ArrivalClock:
    """The ``ArrivalClock`` of ``agents.context`` over a worker's transport session.

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
        ingest = await self._info(self._ingest_stream)
        ingest_bound = None if ingest is None else _ingest_bound(ingest)
        names = [self._naming.stream(topic, partition) for partition in partitions]
        infos = await asyncio.gather(*(self._info(name) for name in names))
        promises: dict[int, Promise] = {}
        for partition, info in zip(partitions, infos):
            if info is None:
                continue
            bound = _timestamp(info["ts"])
            if ingest_bound is not None:
                bound = min(bound, ingest_bound)
            promises[partition] = Promise(int(info["state"]["last_seq"]), bound - TOLERANCE)
        return promises

    async def _info(self, stream: str) -> dict[str, Any] | None:
        """The stream's info as the server sends it (nats-py's model drops ``ts`` and ``first_ts``)."""
        try:
            reply = await self._session.client.request(
                f"$JS.API.STREAM.INFO.{stream}", b"", timeout=_REQUEST_TIMEOUT
            )
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
