"""Reading the ``metrics`` KV bucket: one student's windows by start, the latest one, and a watch.

Keys are ``<series>.<key parts>.<window_start>`` (see :mod:`contract.names`: a metric's
version 1 goes by its name, later versions by ``<metric>_v<version>``); every query reads one
version, by default the one the registry gives readers (the newest complete one), and the version's
description in the registry (:mod:`bridges.public.metric_registry`) gives its key fields and its
windows, so any metric a worker runs is read alike, and a metric the registry does not know is
:class:`UnknownMetric`. Reads are direct gets (:mod:`bridges.direct_get`): no query creates a
consumer.

**A range** of window starts ``[from, to)`` is read by key when the metric's windows start at the
multiples of a whole number of seconds (tumbling and hopping windows): the keys of every window
start in the range are computed and fetched, a few hundred per request, a missing key being a
window without events. The cost is that of the range, whatever the student's history; a key part
after the student's that the caller leaves open (every game of a metric per game) is a wildcard.
A range of more than :data:`MAX_KEYED_WINDOWS` windows, one without ``from``, or a metric whose
starts are not computable (session windows) reads every key of the student instead,
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
from bridges.public.metric_registry import MetricRegistry
from bridges.public.streams import PublicStreams
from contract.events import MAX_FUTURE_SECONDS
from contract.names import METRICS_BUCKET, metric_series, parse_metrics_key, require_id, require_metric
from contract.registry import MetricDescription
from tables.errors import ClosedError, ConfigError
from tables.windows import window_starts

__all__ = [
    "MAX_KEYED_WINDOWS",
    "MetricEntry",
    "MetricsReader",
    "PROBE_WINDOWS",
    "RECENT_WINDOWS",
    "UnknownMetric",
    "UnknownVersion",
    "key_filter",
]

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


class UnknownMetric(ConfigError):
    """A metric no worker has described in the registry (none runs, or ran, by that name)."""

    def __init__(self, metric: str, known: list[str]) -> None:
        super().__init__("metric", metric, f"unknown metric; known: {', '.join(known) or 'none yet'}", kind="Argument")
        self.known = known


class UnknownVersion(ConfigError):
    """A version of a known metric that no worker has described."""

    def __init__(self, metric: str, version: int, known: list[int]) -> None:
        listed = ", ".join(str(v) for v in known) or "none"
        super().__init__("version", version, f"{metric} has no such version; known: {listed}", kind="Argument")
        self.known = known


@dataclass(frozen=True, slots=True)
class MetricEntry:
    """One current value of the bucket, with what its key says."""

    key: str
    #: the key's first token: the metric's series (its name, for version 1)
    metric: str
    #: the key's parts in the metric's key_fields order (the first one: the student)
    key_parts: tuple[str, ...]
    window_start: int
    value: bytes
    revision: int

    @property
    def student_id(self) -> str:
        return self.key_parts[0]

    @property
    def game_id(self) -> str | None:
        """The key's second part, if it has one: the game, for a metric keyed by student and game."""
        return self.key_parts[1] if len(self.key_parts) > 1 else None


def _entry(subject: str, headers: Mapping[str, str] | None, value: bytes, revision: int) -> MetricEntry | None:
    if headers and (headers.get("KV-Operation") in _DELETED or "Nats-Marker-Reason" in headers):
        return None
    key = subject[len(_PREFIX) :]
    parsed = parse_metrics_key(key)
    if parsed is None:
        return None  # not a key of the contract; someone else's business
    metric, parts, start = parsed
    return MetricEntry(key, metric, parts, start, value=value, revision=revision)


def _stored_entry(msg: StoredMsg) -> MetricEntry | None:
    return _entry(msg.subject, msg.headers, msg.data, msg.seq)


def _delivered_entry(msg: Msg) -> MetricEntry | None:
    ack = parse_ack_subject(msg.reply) if msg.reply else None
    return _entry(msg.subject, msg.headers, msg.data, ack.stream_seq if ack else 0)


def key_filter(description: MetricDescription, student_id: str | None, parts: Mapping[str, str] | None = None) -> str:
    """The subject filter of one metric's keys for one student (or all), the key's later parts
    narrowed by ``parts`` (key field -> id; the others are wildcards). Ends with the start's
    wildcard."""
    parts = dict(parts or {})
    later = description.key_fields[1:]
    for name in parts:
        if name not in later:
            raise ConfigError(name, parts[name], f"is not a key field of {description.name} after the first "
                              f"(those are: {', '.join(later) or 'none'})", kind="Argument")
        require_id(name, parts[name])
    student = require_id("student_id", student_id) if student_id is not None else "*"
    tokens = [require_metric(description.series), student, *(parts.get(name, "*") for name in later), "*"]
    return _PREFIX + ".".join(tokens)


class MetricsReader:
    """Queries and watches over the ``metrics`` bucket; an async context manager.

    Args:
        client: a connected nats-py client (not owned).
        streams: the deployment's public names; the buckets are created on :meth:`start` if no
            worker created them yet, so queries answer "nothing yet" instead of failing.
        timeout: seconds one request to the server may take.
        clock: the wall clock, epoch seconds (the newest start a window can have).
    """

    def __init__(
        self,
        client: Client,
        *,
        streams: PublicStreams,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._streams = streams
        self._timeout = timeout
        self._clock = clock
        self._direct = DirectGet(client, _STREAM, timeout=timeout)
        #: the metrics that run, and their keys and windows
        self.registry = MetricRegistry(client, streams=streams, timeout=timeout)
        self._started = False
        self._closed = False

    async def start(self) -> MetricsReader:
        if self._closed or self._started:
            raise ClosedError("a metrics reader can be started once")
        await self._streams.ensure_metrics_bucket(self._client.jetstream())
        await self.registry.start()
        await self._direct.start()
        self._started = True
        return self

    async def describe(self, metric: str, version: int | None = None) -> MetricDescription:
        """The description of ``metric``'s ``version`` (None: the default one, the newest
        complete); :class:`UnknownMetric` when no worker published one."""
        self._require_open()
        description = await self.registry.get(metric, version)
        if description is None:
            if version is not None and await self.registry.get(metric) is not None:
                raise UnknownVersion(metric, version, await self._versions(metric))
            raise UnknownMetric(metric, list(self.registry.known()))
        return description

    async def _versions(self, metric: str) -> list[int]:
        return [v.description.version for v in (await self.registry.catalog()).get(metric, [])]

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Idempotent; running watches end at their next value."""
        self._closed = True
        await self._direct.close()
        await self.registry.close()

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
        parts: Mapping[str, str] | None = None,
        start_from: int | None = None,
        start_to: int | None = None,
        include_open: bool = False,
        version: int | None = None,
    ) -> list[MetricEntry]:
        """Final windows with ``start_from <= window_start < start_to`` (epoch seconds, either open).

        With ``include_open``, also the provisional values (``"final": false``) of windows still
        open, when the workers write them (``METRICS_UPDATE_SECONDS``). ``parts`` narrows the key's
        later fields (``{"game_id": "g1"}``). Ordered by window start, then the key's later parts
        (windows of several games share starts). Reads by key when it can (see the module
        docstring); :class:`UnknownMetric` for a metric the registry does not know. ``version``:
        the metric's version to read (None: the default one, see :meth:`describe`).
        """
        description = await self.describe(metric, version)
        subjects = key_filter(description, student_id, parts)
        starts = self._keyed_starts(description.window.start_step, start_from, start_to)
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

    async def latest(
        self, metric: str, student_id: str, *, parts: Mapping[str, str] | None = None, version: int | None = None
    ) -> MetricEntry | None:
        """The window with the largest start whose value says ``"final": true``, or None.

        Read back from the newest start a window can have, in the steps the module docstring gives.
        ``version`` as for :meth:`windows`.
        """
        description = await self.describe(metric, version)
        subjects = key_filter(description, student_id, parts)
        window = description.window.start_step
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

    def _keyed_starts(self, step: int | None, start_from: int | None, start_to: int | None) -> range | None:
        """The window starts to read by key, or None when the range is to be read from the history."""
        if step is None or start_from is None:
            return None
        end = start_to if start_to is not None else self._newest_start() + 1
        starts = window_starts(start_from, end, step)
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
        parts: Mapping[str, str] | None = None,
        include_existing: bool = False,
        pending_limit: int = 4096,
        version: int | None = None,
    ) -> AsyncIterator[AsyncIterator[MetricEntry]]:
        """Values as they are written, for one metric (or all) and one student (or all)::

            async with reader.watch("engagement", "s-42") as entries:
                async for entry in entries: ...

        The watch is live once the block is entered (a value written after that is seen). With
        ``include_existing`` the current value of every matching key comes first. An ordered
        consumer carries it, so a reconnect or a server restart resumes where it was; the server
        waits for us (flow control), and at most ``pending_limit`` messages queue here. Leaving
        the block removes the consumer. Every metric's keys are watched alike, a metric that starts
        later too, named or not: only ``parts`` asks the registry for the metric's key fields
        (:class:`UnknownMetric` if no worker described it yet). A named metric is watched in one
        version: ``version``, or the default one when the watch starts (version 1 for a metric
        no worker described yet); without a metric, every version of every metric is.
        """
        self._require_open()
        if parts:
            if metric is None:
                raise ConfigError("parts", parts, "narrow the keys of one metric: name it", kind="Argument")
            subjects = key_filter(await self.describe(metric, version), student_id, parts)
        else:
            # The key's later parts and its start, whatever their number: no description needed.
            student = require_id("student_id", student_id) if student_id is not None else "*"
            series = await self.series(metric, version) if metric is not None else "*"
            subjects = f"{_PREFIX}{series}.{student}.>"
        sub = await self._client.jetstream().subscribe(
            subjects,
            stream=_STREAM,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT if include_existing else DeliverPolicy.NEW,
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

    async def series(self, metric: str, version: int | None = None) -> str:
        """The series readers of ``metric`` follow: ``version``'s, or the default version's (the
        newest complete), or version 1's for a metric no worker described yet."""
        if version is not None:
            return metric_series(metric, version)
        described = await self.registry.get(require_metric(metric))
        return described.series if described is not None else metric_series(metric)

    def _require_open(self) -> None:
        if self._closed:
            raise ClosedError("the metrics reader is closed")
        if not self._started:
            raise ClosedError("the metrics reader has not been started")


def _order(entry: MetricEntry) -> tuple[int, tuple[str, ...]]:
    return entry.window_start, entry.key_parts


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
