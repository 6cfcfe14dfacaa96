"""Where closed windows and rejected events go: the ``metrics`` KV bucket, result subjects, dead letters.

A window's result is written **once**: a compare-and-set KV write, so the value of a closed window
never changes. A replay after a crash that closes the same window again finds the key taken,
compares, and keeps the first value — logging an error if they differ, which only a
non-deterministic aggregate could cause. Once KV holds the final value, that value goes out on
``results.<metric>.<id>``: published by the server from KV when the results stream is fed from the
bucket (:func:`~bridges.public.streams.republishing_results`, the default), else by this writer
with ``Nats-Msg-Id`` = ``result:<kv key>``, so a replay does not publish it twice within the
duplicate window; dead letters carry a caller-chosen id for the same reason.
Final values and dead letters are written only while this worker's lease is valid, and a failed
one can be tried again: the protocol is in :mod:`bridges.public.fenced_writes`.

Provisional values (``METRICS_UPDATE_SECONDS``): the current value of an open window, marked
``"final": false``, may be written under the same key before the final one. Every KV write states
the revision it replaces (``Nats-Expected-Last-Subject-Sequence``; 0: the key must not exist), and
a revision is only ever stated when the value at it was seen to be provisional:

- A provisional write states the revision its previous provisional write of the key got (from the
  ack), or 0. When refused it is dropped, and the key is read once: a provisional value there (the
  partition's previous owner wrote it, or an ack was lost) gives the revision to replace, and the
  refused value is sent once more over it; a final value there ends provisional writes of the key.
  So a provisional value only ever creates a key or replaces a provisional one, never a final one.
- The final write states the revision of this worker's last provisional write of the key, or 0.
  When refused, the key is read: a provisional value (or a delete marker) is replaced by a write
  stating its revision, a key that reads as absent is written stating 0 (a replica behind the
  leader may have answered the read: the leader then refuses again, and the key is read again),
  and a final value is compared as above. This repeats, backing off, until the final value is
  stored or found (an old owner not yet fenced may still be writing provisional values for a
  moment). Once final, no write states a revision at or after the final one, so no provisional
  value can follow it.
- At most one provisional write of a key is in flight (a newer value waits, only the newest), and
  the final write waits for the one in flight: it must state the revision that write gets, and
  must not race it to the stream (a clustered stream refuses a second write stating the same
  subject sequence while the first is being proposed). A provisional write is therefore never
  behind the final one of its key in the stream.

Provisional writes are best effort: they never fail a caller, and what they leave undone the next
value or the final write takes care of; while the lease may have expired, none is sent. They go
through a publisher of their own, with a small in-flight budget, so a burst of them can neither
use up the session's budget nor hold up a commit (faust's commit flushes the session's publisher).

Everything goes through the transport session's pipelined publisher: the caller gets an
awaitable per write and decides when to wait (the windowed table waits before it flushes its
state, so a window never leaves the state before its result is stored).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from bridges.direct_get import DirectGet
from bridges.public.fenced_writes import EXPECTED, FencedWriter, Stored, kv_subject
from bridges.public.metric_registry import publish_description
from bridges.public.published_results import PublishedResults
from bridges.public.streams import MAX_KEY_FIELDS, PublicStreams
from bridges.public.version_progress import VersionProgress
from bridges.transport.envelope import HDR_MSG_ID
from bridges.transport.publisher import Ack, ExpectationFailed, PipelinedPublisher
from bridges.transport.session import TransportSession
from contract.deadletters import REASON_HEADER, header_text
from contract.names import EVENTS_TOPIC
from contract.registry import MetricDescription
from tables.errors import ClosedError, ConfigError

__all__ = ["WindowResults"]

log = logging.getLogger(__name__)

#: unacknowledged provisional writes before the next one waits
_PROVISIONAL_IN_FLIGHT: Final = 512
#: how long closing waits for final writes still under way
_CLOSE_TIMEOUT: Final = 30.0
#: keys whose provisional revision is remembered; forgetting one costs a refused write and a read
_TRACKED_KEYS: Final = 100_000


@dataclass(eq=False)
class _Provisional:
    """This worker's provisional writes of one key."""

    #: revision of the provisional value this worker last saw under the key (its own write's, or
    #: one read after a refusal); 0 when none is known: the next write expects no key
    revision: int = 0
    #: done when no write of the key is in flight any more (None: none is)
    busy: asyncio.Future[None] | None = None
    #: follows the write in flight to its outcome, then sends ``queued``
    task: asyncio.Task[None] | None = None
    #: the newest value waiting for the write in flight
    queued: bytes | None = None
    #: the window is final (written by us now, or found written): nothing more is sent
    final: bool = False


class WindowResults:
    """The ``ResultWriter`` of ``agents.windowed`` over a worker's transport session."""

    def __init__(
        self, session: TransportSession, streams: PublicStreams, *, events_topic: str = EVENTS_TOPIC,
        provisional: bool = False,
    ) -> None:
        self._session = session
        self._streams = streams
        self._events_topic = events_topic
        #: whether this worker writes provisional values (``METRICS_UPDATE_SECONDS``)
        self._writes_provisional = provisional
        self._kv: KeyValue | None = None
        self._provisional_out: PipelinedPublisher | None = None
        #: direct gets of the results stream: is a final found in KV published already?
        self._results_reader: DirectGet | None = None
        self._open = False
        #: final values and dead letters, fenced by the lease (set while open)
        self._fenced: FencedWriter | None = None
        #: per KV key, least recently written first (the bound forgets from there)
        self._provisional: dict[str, _Provisional] = {}
        #: the metric's description, published to the registry at start (see :meth:`announce`)
        self._description: MetricDescription | None = None
        #: how far the metric's version has come through the stored events, while it has not
        self._progress: VersionProgress | None = None

    def announce(self, description: MetricDescription) -> None:
        """Publish ``description`` to the metric registry when this writer starts, and keep the
        version's backfill record while it runs (:mod:`bridges.public.version_progress`)."""
        self._description = description

    async def start(self) -> None:
        if self._open:
            return
        await self._session.acquire()
        js = self._session.js
        self._kv = await self._streams.ensure_metrics_bucket(js)
        republished = await self._streams.ensure_results(js)
        await self._streams.ensure_deadletter(js)
        if republished:
            self._check_republishable()
        if self._description is not None:
            # Before any result: a reader that sees a result can learn its metric.
            await publish_description(js, self._streams, self._description)
            self._progress = await VersionProgress(
                self._session, self._streams, self._description.series, topic=self._events_topic,
            ).start()
        self._provisional_out = await PipelinedPublisher(
            self._session.client,
            max_in_flight=_PROVISIONAL_IN_FLIGHT,
            ack_timeout=self._session.options.ack_timeout,
        ).start()
        self._results_reader = await DirectGet(self._session.client, self._streams.results).start()
        session = self._session
        self._fenced = FencedWriter(
            session.publisher,
            self._read,
            # Read at each write: the consumer sets the session's lease once it joins its group.
            lease=lambda: session.lease,
            connected=lambda: session.client.is_connected,
            published=None if republished else PublishedResults(self._results_reader).holds,
        )
        self._open = True

    def _check_republishable(self) -> None:
        """The server publishes every write of the metrics bucket on a result subject
        (:func:`~bridges.public.streams.republishing_results`): refuse what it must not see."""
        if self._writes_provisional:
            raise ConfigError(
                "METRICS_UPDATE_SECONDS", "> 0",
                f"provisional values share their final's KV key, and the results stream {self._streams.results} "
                "publishes every value the metrics bucket stores: run every process with RESULTS_FROM=workers "
                "(and a results stream made by them: docs/operations.md, results stream)",
            )
        description = self._description
        if description is not None and len(description.key_fields) > MAX_KEY_FIELDS:
            raise ConfigError(
                "key_fields", description.key_fields,
                f"has more than {MAX_KEY_FIELDS} fields, the most the results stream {self._streams.results} "
                "maps to result subjects: run with RESULTS_FROM=workers",
            )

    async def close(self) -> None:
        if not self._open:
            return
        if self._progress is not None:
            await self._progress.close()
            self._progress = None
        # Provisional values still to be sent are not worth waiting for on the way out; cancelled,
        # they release the final writes waiting behind them.
        tasks = [state.task for state in self._provisional.values() if state.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Final writes already accepted are finished while the writer is still open.
        if self._fenced is not None:
            await self._fenced.close(_CLOSE_TIMEOUT)
        self._open = False
        self._provisional.clear()
        if self._provisional_out is not None:
            await self._provisional_out.close(timeout=1.0)
            self._provisional_out = None
        if self._results_reader is not None:
            await self._results_reader.close()
            self._results_reader = None
        await self._session.publisher.flush(timeout=30)
        await self._session.release()

    # -- final results --------------------------------------------------------------------

    async def wait_writable(self, timeout: float) -> bool:
        return await self._require_fenced().wait_writable(timeout)

    async def write_result(self, kv_key: str, subject: str, payload: bytes) -> Awaitable[None]:
        fenced = self._require_fenced()
        state = self._provisional.pop(kv_key, None)
        if state is None:
            return await fenced.final(kv_key, subject, payload, revision=lambda: 0)
        state.final = True
        state.queued = None
        # With a provisional write in flight, the final one states the revision that write gets,
        # and does not race it to the stream.
        return await fenced.final(kv_key, subject, payload, revision=lambda: state.revision, after=state.busy)

    # -- provisional values ---------------------------------------------------------------

    async def write_provisional(self, kv_key: str, payload: bytes) -> Awaitable[None]:
        """Write the current value of an open window (``"final": false``), best effort.

        Returns once the write is under way, or waits behind the write of the key in flight (only
        the newest value waits). The awaitable completes when no write of the key is in flight
        any more — this value, or a newer one, stored or dropped; it never fails.
        """
        publisher = self._provisional_publisher()
        if not self._session.lease.valid():
            return _settled()  # another worker may own the window now; its values are the ones
        guard = self._require_fenced().guard()
        state = self._provisional.pop(kv_key, None)
        if state is None:
            self._forget_least_recent()
            state = _Provisional()
        self._provisional[kv_key] = state  # now the most recently written
        if state.final:
            return _settled()
        if state.busy is not None:
            state.queued = payload
            return state.busy
        busy = state.busy = asyncio.get_running_loop().create_future()
        try:
            sent = await publisher.publish(kv_subject(kv_key), payload, {EXPECTED: str(state.revision)}, guard=guard)
        except BaseException:
            state.busy = None
            busy.set_result(None)
            raise
        state.task = asyncio.create_task(
            self._follow_provisional(kv_key, state, payload, sent, guard), name=f"provisional:{kv_key}"
        )
        return busy

    def _forget_least_recent(self) -> None:
        """Keep the memory bounded (e.g. keys of partitions this worker gave up)."""
        if len(self._provisional) < _TRACKED_KEYS:
            return
        for kv_key, state in self._provisional.items():
            if state.busy is None:
                del self._provisional[kv_key]
                return

    async def _follow_provisional(
        self,
        kv_key: str,
        state: _Provisional,
        payload: bytes,
        sent: asyncio.Future[Ack],
        guard: Callable[[], bool],
    ) -> None:
        """Learn from the outcome of the write in flight, then send the value waiting, if any."""
        resent = False
        try:
            while True:
                try:
                    state.revision = (await sent).seq
                except ExpectationFailed:
                    stored = await self._read_quietly(kv_key)
                    log.debug("provisional value of %s refused; the key holds %s", kv_key, stored)
                    if stored is not None and stored.replaceable:
                        state.revision = stored.revision
                        if not resent and state.queued is None:
                            state.queued, resent = payload, True  # once more, over the value found
                    elif stored is not None:
                        state.final = True  # another owner closed the window: we are behind
                    else:
                        state.revision = 0
                except Exception as exc:  # noqa: BLE001 - best effort: NATS away, publisher closed
                    # The outcome is unknown: expect no key next time, and learn from the refusal.
                    log.debug("provisional value of %s not written: %s", kv_key, exc)
                    state.revision = 0
                if state.queued is None or state.final:
                    return
                payload, state.queued = state.queued, None
                try:
                    sent = await self._provisional_publisher().publish(
                        kv_subject(kv_key), payload, {EXPECTED: str(state.revision)}, guard=guard
                    )
                except Exception as exc:  # noqa: BLE001 - best effort: the writer is closing
                    log.debug("provisional value of %s not sent: %s", kv_key, exc)
                    return
        finally:
            busy, state.busy, state.task = state.busy, None, None
            if busy is not None:
                busy.set_result(None)

    async def _read_quietly(self, kv_key: str) -> Stored | None:
        try:
            return await self._read(kv_key)
        except Exception as exc:  # noqa: BLE001 - best effort; the next refusal reads again
            log.debug("reading %s after a refused provisional value failed: %s", kv_key, exc)
            return None

    async def _read(self, kv_key: str) -> Stored | None:
        if self._kv is None:
            raise ClosedError("the window results writer is not started")
        try:
            entry = await self._kv.get(kv_key)
        except KeyNotFoundError as exc:
            # nats-py reports a delete marker as not found, with the marker's entry attached.
            marker = getattr(exc, "entry", None)
            if marker is None:
                return None
            return Stored(marker.revision or 0, b"", deleted=True)
        return Stored(entry.revision or 0, entry.value or b"")

    # -- dead letters ---------------------------------------------------------------------

    async def dead_letter(
        self, subject: str, payload: bytes, *, reason: str, msg_id: str
    ) -> Awaitable[None]:
        # Header values are one line of ASCII; a reason quoting odd input is made to fit.
        return await self._require_fenced().dead_letter(
            subject, payload, {HDR_MSG_ID: msg_id, REASON_HEADER: header_text(reason)}
        )

    def _require_open(self) -> TransportSession:
        if not self._open:
            raise ClosedError("the window results writer is not started")
        return self._session

    def _require_fenced(self) -> FencedWriter:
        self._require_open()
        assert self._fenced is not None  # set whenever the writer is open
        return self._fenced

    def _provisional_publisher(self) -> PipelinedPublisher:
        self._require_open()
        assert self._provisional_out is not None  # set whenever the writer is open
        return self._provisional_out


def _settled() -> asyncio.Future[None]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done
