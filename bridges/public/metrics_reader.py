"""Reading the ``metrics`` KV bucket: one student's windows by start, the latest one, and a watch.

Keys are ``<metric>.<student_id>[.<game_id>].<window_start>`` (see :mod:`contract.names`). Reads
are direct gets (:mod:`bridges.direct_get`): no query creates a consumer.

**A range** of window starts ``[from, to)`` is read by key when the windows' length is known
(``window_seconds``: the metrics' tumbling windows start at the multiples of it): the keys of every
window start in the range are computed and fetched, a few hundred per request, a missing key being
a window without events. The cost is that of the range, whatever the student's history; for
``outcomes`` without a game the key's game is a wildcard. A range of more than
:data:`MAX_KEYED_WINDOWS` windows, one without ``from``, or a reader that does not know the window
length (session windows, whose start is not computable) reads every key of the student instead,
page by page: the cost of the history, which the bucket's TTL bounds. A range without ``to`` ends
at the latest start a window can have now (events are at most ``MAX_FUTURE_SECONDS`` ahead).

**The latest final window** is found by reading back from the newest possible start, never the
history, in three steps, each exact under the rule that a final value is written after its
window ended (finals are computed when windows close):

1. the windows of the last :data:`RECENT_WINDOWS` window lengths, newest first: a student with a
   recent final is answered here, with one or two requests;
2. else the student's last write (one direct get; none: no windows at all): every final was
   written by then, so its start is before that time; the keys below it are read back, newest
   first, up to :data:`PROBE_WINDOWS` windows;
3. else (finals written long after their windows: a backfill, a long outage, imported data) the
   student's keys are read in full, as a range without ``from`` is.

Values are handed out as the bytes the workers stored: typing them is the caller's business
(:mod:`contract.results` has the models).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from bridges.direct_get import DirectGet, StoredMsg
from bridges.jetstream import parse_ack_subject
from bridges.public.streams import PublicStreams
from contract.events import MAX_FUTURE_SECONDS
from contract.names import METRIC_NAMES, METRICS_BUCKET, parse_metrics_key, require_id, require_metric
from tables.errors import ClosedError, ConfigError
from tables.windows import window_starts

__all__ = ["MAX_KEYED_WINDOWS", "MetricEntry", "MetricsReader", "PROBE_WINDOWS", "RECENT_WINDOWS", "key_filters"]

log = logging.getLogger(__name__)

_STREAM = f"KV_{METRICS_BUCKET}"
_PREFIX = f"$KV.{METRICS_BUCKET}."
_DELETED = frozenset({"DEL", "PURGE"})

#: the longest range, in windows, read by key (7 days of 60 s windows); a longer one reads the history
MAX_KEYED_WINDOWS: Final = 10_080
#: window lengths back from now that the latest window is first looked for in
RECENT_WINDOWS: Final = 64
#: windows read back from a student's last write before reading the history instead
PROBE_WINDOWS: Final = 4_096
#: keys read in the first request of a read back; each next one reads four times as many
_FIRST_PROBE: Final = 64
#: how far behind the NATS servers' clocks this process's clock may be without a range that has no
#: ``to``, or the latest window, missing the newest windows
_CLOCK_ALLOWANCE: Final = 60


@dataclass(frozen=True, slots=True)
class MetricEntry:
    """One current value of the bucket, with what its key says."""

    key: str
    metric: str
    student_id: str
    game_id: str | None
    window_start: int
    value: bytes
    revision: int


def _entry(subject: str, headers: Mapping[str, str] | None, value: bytes, revision: int) -> MetricEntry | None:
    if headers and (headers.get("KV-Operation") in _DELETED or "Nats-Marker-Reason" in headers):
        return None
    key = subject[len(_PREFIX) :]
    parsed = parse_metrics_key(key)
    if parsed is None:
        return None  # not a key of the contract; someone else's business
    return MetricEntry(key, *parsed, value=value, revision=revision)


def _stored_entry(msg: StoredMsg) -> MetricEntry | None:
    return _entry(msg.subject, msg.headers, msg.data, msg.seq)


def _delivered_entry(msg: Msg) -> MetricEntry | None:
    ack = parse_ack_subject(msg.reply) if msg.reply else None
    return _entry(msg.subject, msg.headers, msg.data, ack.stream_seq if ack else 0)


def key_filters(metric: str | None, student_id: str | None, game_id: str | None = None) -> list[str]:
    """Subject filters of the bucket's stream for one metric (or all) and one student (or all)."""
    if metric is not None:
        require_metric(metric)
    student = require_id("student_id", student_id) if student_id is not None else "*"
    if game_id is not None:
        require_id("game_id", game_id)
        if metric not in (None, "outcomes"):
            raise ConfigError("game_id", game_id, f"does not apply to {metric}", kind="Argument")
    filters = []
    for name in (metric,) if metric else METRIC_NAMES:
        if name == "outcomes":
            filters.append(f"{_PREFIX}outcomes.{student}.{game_id or '*'}.*")
        elif game_id is None:
            filters.append(f"{_PREFIX}{name}.{student}.*")
    return filters


class MetricsReader:
    """Queries and watches over the ``metrics`` bucket; an async context manager.

    Args:
        client: a connected nats-py client (not owned).
        streams: the deployment's public names; the bucket is created on :meth:`start` if no
            worker created it yet, so queries answer "nothing yet" instead of failing.
        timeout: seconds one request to the server may take.
        window_seconds: the length of the metrics' tumbling windows (``METRICS_WINDOW_SECONDS``),
            which makes their keys computable; None when not known: every read is of the history.
        clock: the wall clock, epoch seconds (the newest start a window can have).
    """

    def __init__(
        self,
        client: Client,
        *,
        streams: PublicStreams,
        timeout: float = 10.0,
        window_seconds: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window_seconds is not None and (type(window_seconds) is not int or window_seconds <= 0):
            raise ConfigError("window_seconds", window_seconds, "must be a whole number of seconds > 0", kind="Argument")
        self._client = client
        self._streams = streams
        self._timeout = timeout
        self._window = window_seconds
        self._clock = clock
        self._direct = DirectGet(client, _STREAM, timeout=timeout)
        self._started = False
        self._closed = False

    async def start(self) -> MetricsReader:
        if self._closed or self._started:
            raise ClosedError("a metrics reader can be started once")
        await self._streams.ensure_metrics_bucket(self._client.jetstream())
        await self._direct.start()
        self._started = True
        return self

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Idempotent; running watches end at their next value."""
        self._closed = True
        await self._direct.close()

    async def __aenter__(self) -> MetricsReader:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- queries --------------------------------------------------------------------------

    async def windows(
        self,
        metric: str,
        student_id: str,
        *,
        game_id: str | None = None,
        start_from: int | None = None,
        start_to: int | None = None,
        include_open: bool = False,
    ) -> list[MetricEntry]:
        """Final windows with ``start_from <= window_start < start_to`` (epoch seconds, either open).

        With ``include_open``, also the provisional values (``"final": false``) of windows still
        open, when the workers write them (``METRICS_UPDATE_SECONDS``). Ordered by window start,
        then game id (outcomes of several games share starts). Reads by key when it can (see the
        module docstring).
        """
        [subjects] = key_filters(metric, student_id, game_id)
        self._require_open()
        starts = self._keyed_starts(start_from, start_to)
        if starts is not None:
            entries = await self._read_keys(subjects, starts)
        else:
            entries = await self._read_all(subjects)
        selected = [
            entry
            for entry in entries
            if (start_from is None or entry.window_start >= start_from)
            and (start_to is None or entry.window_start < start_to)
            and (include_open or _is_final(entry.value))
        ]
        selected.sort(key=_order)
        return selected

    async def latest(self, metric: str, student_id: str, *, game_id: str | None = None) -> MetricEntry | None:
        """The window with the largest start whose value says ``"final": true``, or None.

        Read back from the newest start a window can have, in the steps the module docstring gives.
        """
        [subjects] = key_filters(metric, student_id, game_id)
        self._require_open()
        window = self._window
        if window is None:
            return _newest_final(await self._read_all(subjects))
        # 1. The newest windows: every start up to the newest possible, back RECENT_WINDOWS lengths.
        recent = window_starts(math.floor(self._clock()) - RECENT_WINDOWS * window, self._newest_start() + 1, window)
        found = await self._read_back(subjects, recent)
        if found is not None:
            return found
        # 2. Back from the student's last write, below what step 1 read.
        last = await self._direct.last(subjects)
        if last is None:
            return None  # the student has no key of this metric at all
        below = min(math.floor(last.time) + 1, recent.start)
        found = await self._read_back(subjects, window_starts(below - PROBE_WINDOWS * window, below, window))
        if found is not None:
            return found
        # 3. Finals written long after their windows: the history.
        return _newest_final(await self._read_all(subjects))

    def _newest_start(self) -> int:
        """The largest start a window can have now: no event is more than MAX_FUTURE_SECONDS ahead."""
        return math.floor(self._clock()) + int(MAX_FUTURE_SECONDS) + _CLOCK_ALLOWANCE

    def _keyed_starts(self, start_from: int | None, start_to: int | None) -> range | None:
        """The window starts to read by key, or None when the range is to be read from the history."""
        if self._window is None or start_from is None:
            return None
        end = start_to if start_to is not None else self._newest_start() + 1
        starts = window_starts(start_from, end, self._window)
        return starts if len(starts) <= MAX_KEYED_WINDOWS else None

    async def _read_keys(self, subjects: str, starts: range) -> list[MetricEntry]:
        """The current values of the windows at ``starts``; a missing key is a window without events."""
        # ``subjects`` ends with the start's wildcard: each start takes its place.
        stem = subjects[:-1]
        messages = await self._direct.last_per_subject([f"{stem}{start}" for start in starts])
        return [entry for msg in messages if (entry := _stored_entry(msg)) is not None]

    async def _read_back(self, subjects: str, starts: range) -> MetricEntry | None:
        """The final window with the largest start among ``starts``: newest keys first, a few
        requests, each reading four times as many keys as the one before, until one is found."""
        newest_first = starts[::-1]
        done, size = 0, _FIRST_PROBE
        while done < len(newest_first):
            found = _newest_final(await self._read_keys(subjects, newest_first[done : done + size]))
            if found is not None:
                return found
            done, size = done + size, size * 4
        return None

    async def _read_all(self, subjects: str) -> list[MetricEntry]:
        """Every current value under ``subjects``: the student's history, a page at a time."""
        newest: dict[str, StoredMsg] = {}
        for msg in await self._direct.walk(subjects):
            newest[msg.subject] = msg  # pages are not one snapshot: a key written again comes later
        return [entry for msg in newest.values() if (entry := _stored_entry(msg)) is not None]

    # -- watching -------------------------------------------------------------------------

    @asynccontextmanager
    async def watch(
        self,
        metric: str | None = None,
        student_id: str | None = None,
        *,
        game_id: str | None = None,
        include_existing: bool = False,
        pending_limit: int = 4096,
    ) -> AsyncIterator[AsyncIterator[MetricEntry]]:
        """Values as they are written, for one metric (or all) and one student (or all)::

            async with reader.watch("engagement", "s-42") as entries:
                async for entry in entries: ...

        The watch is live once the block is entered (a value written after that is seen). With
        ``include_existing`` the current value of every matching key comes first. An ordered
        consumer carries it, so a reconnect or a server restart resumes where it was; the server
        waits for us (flow control), and at most ``pending_limit`` messages queue here. Leaving
        the block removes the consumer.
        """
        self._require_open()
        filters = key_filters(metric, student_id, game_id)
        sub = await self._client.jetstream().subscribe(
            filters[0],
            stream=_STREAM,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT if include_existing else DeliverPolicy.NEW,
                filter_subjects=filters if len(filters) > 1 else None,
            ),
            pending_msgs_limit=pending_limit,
        )
        try:
            yield _Entries(sub, self)
        finally:
            try:
                await sub.unsubscribe()
            except Exception:
                log.debug("unsubscribing a metrics watch failed", exc_info=True)

    def _require_open(self) -> None:
        if self._closed:
            raise ClosedError("the metrics reader is closed")
        if not self._started:
            raise ClosedError("the metrics reader has not been started")


def _order(entry: MetricEntry) -> tuple[int, str]:
    return entry.window_start, entry.game_id or ""


def _newest_final(entries: list[MetricEntry]) -> MetricEntry | None:
    finals = [entry for entry in entries if _is_final(entry.value)]
    return max(finals, key=_order) if finals else None


def _is_final(value: bytes) -> bool:
    try:
        document = json.loads(value)
    except ValueError:
        return False
    return isinstance(document, dict) and document.get("final") is True


class _Entries:
    """The values of one watch; ends when the watch's block is left or the reader closes."""

    def __init__(self, sub: JetStreamContext.PushSubscription, reader: MetricsReader) -> None:
        self._messages = sub.messages
        self._reader = reader

    def __aiter__(self) -> _Entries:
        return self

    async def __anext__(self) -> MetricEntry:
        while not self._reader.closed:
            msg = await anext(self._messages)  # StopAsyncIteration once unsubscribed
            entry = _delivered_entry(msg)
            if entry is not None:
                return entry
        raise StopAsyncIteration
