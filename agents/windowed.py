"""The faust side of a windowed metric: its agent, its state table, its results.

A metric module in ``agents/`` defines a :class:`~tables.MetricDefinition` and exposes
``build = windowed_metric(define)``. That gives, per worker:

- an **agent** over the events topic adding each event of each record (one event, or a batch:
  see :mod:`tables.batch`), with its arrival time (when the platform first stored it), to its
  partition's :class:`~tables.PartitionWindows`; a window counts an ``event_id`` once, however
  late its copy comes while the window is open, and late events and events that cannot be read
  are dead-lettered with the reason, never dropped;
- a **closer** that, every :data:`CLOCK_INTERVAL`, reads the arrival clock (what the streams
  promise about the arrivals still to come, see :mod:`tables.watermark`), moves each partition's
  watermark accordingly (an idle stream's too), and writes each closed window's final result
  once; a window whose result cannot be computed goes to ``deadletter.error.<metric>`` instead,
  and the others close normally;
- with ``update_seconds`` (``METRICS_UPDATE_SECONDS``), an **updater** that writes, that often,
  the current value of each open fixed window that changed, ``"final": false``, under the key its
  final value will take (best effort, never in the way of a flush or of closing, never over a
  final value; see :mod:`bridges.public.window_results`). Sessions have none: their start, hence their
  key, can move;
- a **state table**, a faust table whose changelog holds the open windows, flushed at every commit
  — coalesced, one record per changed window — in the exactly-once order of
  :mod:`tables.changelog`: pending results and dead letters stored, then the changed windows
  (each tagged with the source offset it reflects), then a marker; offsets are committed after.
  On recovery the state is rebuilt from the last marker and reading resumes there, so a replayed
  event is never counted twice; a standby keeps a replica of the changelog and takes over without
  replaying it.

Exactly-once needs this agent to be the only reader of the events topic in its app, which is how
the project runs every agent (one app, one group, per agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import TP, EventT
from mode import Service

from agents.context import AgentContext, ArrivalClock, ResultWriter
from tables import (
    ChangelogReplica,
    ClosedError,
    ClosedWindow,
    Counted,
    Duplicate,
    FailedWindow,
    InvalidEventError,
    Late,
    Marker,
    MetricDefinition,
    OpenWindowResult,
    PartitionWindows,
    Restored,
    Session,
)
from tables.batch import BATCH_PREFIX, decode_record
from tables.compaction import ChangelogPurger, Compaction, Flush

__all__ = ["CLOCK_INTERVAL", "WindowedRuntime", "result_document", "windowed_metric"]

log = logging.getLogger(__name__)

SRC_HEADER = "Src-Offset"
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: seconds between readings of the arrival clock: what an idle stream's windows wait at most
#: beyond their end + grace, besides the clock's own tolerance
CLOCK_INTERVAL = 0.25
#: how often counters are logged
_STATS_EVERY = 30.0
#: how soon the closer looks again while partitions are moving
_PAUSED_RECHECK = 0.1
#: the longest pause between closer rounds that keep failing (NATS away, a write refused)
_FAILING_BACKOFF = 5.0
#: longest wait for this worker's lease to be renewed before the closer looks again
_LEASE_RECHECK = 1.0


def windowed_metric(
    define: Callable[[int, int], MetricDefinition],
) -> Callable[[faust.App, AgentContext], None]:
    """``build(app, context)`` for a metric module; ``define(window_seconds, grace_seconds)``."""

    def build(app: faust.App, context: AgentContext) -> None:
        definition = define(context.window_seconds, context.grace_seconds)
        if definition.id_field is None:
            # Every event of the contract has an event_id: a retry counts once per window.
            definition = dataclasses.replace(definition, id_field="event_id")
        runtime = WindowedRuntime(app, definition, context)

        @app.agent(context.events, name=definition.name)
        async def process(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                message = event.message
                # The transport gives a message the time JetStream stored it (or one it carries):
                # the arrival of events whose batch does not say otherwise.
                await runtime.add(message.partition, message.offset, event.value, message.timestamp)

    return build


def result_document(window: ClosedWindow | OpenWindowResult) -> dict[str, Any]:
    """The public JSON of a window (see ``contract.results`` and docs/api.md).

    ``"final": true`` for a closed window; an open window's current values say ``false``.
    """
    return {
        "metric": window.metric,
        "key": dict(window.key),
        "window": {"start": _rfc3339(window.start), "end": _rfc3339(window.end)},
        "final": isinstance(window, ClosedWindow),
        "events": window.events,
        "values": window.values,
    }


def _strict_json(document: Any) -> bytes:
    """Compact JSON that strict parsers read: NaN and Infinity raise instead of being written."""
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def _rfc3339(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(eq=False)
class _Unstored:
    """A result or dead letter handed to the writer, not yet known to be stored."""

    partition: int
    write: Awaitable[None]


@dataclass
class _Active:
    """A partition this worker processes: its windows and where they stand."""

    windows: PartitionWindows
    #: source offset the in-memory state reflects (the next event to apply); None: from the start
    applied: int | None
    #: source offset of the last completed flush
    flushed: int | None
    #: keys the first flush must rewrite (see tables.changelog)
    repairs: dict[str, Any] = field(default_factory=dict)
    #: offset of this worker's last marker in the changelog
    changelog_offset: int | None = None
    #: what of the changelog may be removed, and when (tables.compaction)
    compaction: Compaction = field(default_factory=Compaction)


class WindowedRuntime:
    """One windowed metric in one worker (see the module docstring)."""

    def __init__(self, app: faust.App, definition: MetricDefinition, context: AgentContext) -> None:
        self.definition = definition
        self.app = app
        self._events_topic = context.events.get_topic_name()
        self._results: ResultWriter = context.results
        self._clock: ArrivalClock = context.clock
        self._update_seconds = context.update_seconds
        if self._update_seconds and isinstance(definition.window, Session):
            log.info("%s: session windows have no provisional values (a session's start can move)", definition.name)
            self._update_seconds = 0.0
        self._partitions: dict[int, _Active] = {}
        #: results and dead letters not yet stored: no flush records anything past them
        self._pending: list[_Unstored] = []
        self._wake = _Wakeup()
        self._marker_key = f"{definition.name}.marker".encode()
        self.stats: Counter[str] = Counter()
        self.table = StateTable(
            app,
            runtime=self,
            name=f"{definition.name}-windows",
            key_type=bytes,
            value_type=bytes,
            # two records per key: a flush that never completed, and the value before it
            extra_topic_configs={"max_msgs_per_subject": 2},
        )
        app.tables.add(self.table)
        context.register_state(self)

    # -- events -----------------------------------------------------------------------------

    async def add(self, partition: int, offset: int, raw: bytes, stored_at: float) -> None:
        """Add the event or batch of events (:mod:`tables.batch`) of one record of the events
        topic; ``stored_at`` is the record's timestamp, the arrival of events that carry none."""
        active = self._partitions.get(partition)
        if active is None:
            return  # a message of a partition given up meanwhile; its new owner reads it
        try:
            record = decode_record(raw, stored_at)
        except ValueError as exc:  # not JSON, or not a batch of the right shape
            await self._reject("invalid", partition, f"{partition}:{offset}", raw, f"not a JSON event: {exc}")
        else:
            if not raw.startswith(BATCH_PREFIX):
                event, arrived_at = record.events[0]
                await self._add(partition, active, event, arrived_at, f"{partition}:{offset}", raw)
            else:
                for index, (event, arrived_at) in enumerate(record.events):
                    await self._add(partition, active, event, arrived_at, f"{partition}:{offset}.{index}", None)
            if record.watermark is not None:
                # The writer's promise about every later record: in a backlog the watermark moves
                # as the records are worked off (the closer then closes what fell due).
                active.windows.promise(offset, record.watermark, next_offset=offset + 1)
        active.applied = offset + 1

    async def _add(
        self, partition: int, active: _Active, event: Any, arrived_at: float, place: str, raw: bytes | None
    ) -> None:
        """Add one event; ``place`` names it in dead letters (partition:offset[.index in its batch]).

        ``raw`` is the event's own record when it came alone (dead-lettered as it was), else None
        (dead-lettered as its JSON).
        """
        try:
            outcome = active.windows.add(event, arrived_at)
        except InvalidEventError as exc:
            await self._reject("invalid", partition, place, raw, str(exc), event)
        except Exception as exc:  # noqa: BLE001 - a poison event must not stop the partition
            log.exception("%s: event %s@%s raised", self.definition.name, self._events_topic, place)
            await self._reject("error", partition, place, raw, f"{type(exc).__name__}: {exc}", event)
        else:
            if isinstance(outcome, Counted):
                self.stats["counted"] += 1
            elif isinstance(outcome, Late):
                await self._reject("late", partition, place, raw, outcome.reason, event)
            elif isinstance(outcome, Duplicate):
                self.stats["duplicates"] += 1
            else:
                self.stats["ignored"] += 1

    async def _reject(
        self, kind: str, partition: int, place: str, raw: bytes | None, reason: str, event: Any = None
    ) -> None:
        self.stats[kind] += 1
        metric = self.definition.name
        payload = raw if raw is not None else json.dumps(event, separators=(",", ":")).encode()
        written = await self._results.dead_letter(
            f"deadletter.{kind}.{metric}",
            payload,
            reason=reason,
            msg_id=f"{kind}:{metric}:{place}",
        )
        self._pending.append(_Unstored(partition, written))

    # -- closing ------------------------------------------------------------------------------

    async def run_closer(self, service: Service) -> None:
        """Read the arrival clock and close what fell due, every ``CLOCK_INTERVAL``; runs as a
        task of the state table. Rounds that fail (NATS away, a write refused) are counted and
        retried after a pause that doubles up to ``_FAILING_BACKOFF``: the closer never spins."""
        last_stats = time.monotonic()
        failures = 0
        pause = CLOCK_INTERVAL
        while not service.should_stop:
            await self._wake.wait(pause)
            if self._paused():
                # Partitions are moving: whoever holds them after closes them (activate() wakes
                # this sooner).
                pause = _PAUSED_RECHECK
                continue
            try:
                await self.tick()
            except Exception as exc:  # noqa: BLE001 - counted, retried after a pause
                failures += 1
                self.stats["closer_failures"] += 1
                pause = min(CLOCK_INTERVAL * 2**failures, _FAILING_BACKOFF)
                if failures == 1:
                    log.exception("%s: closing windows failed; trying again", self.definition.name)
                elif pause == _FAILING_BACKOFF and failures % 12 == 0:
                    log.warning("%s: closing windows still fails (%d rounds): %s", self.definition.name, failures, exc)
            else:
                if failures:
                    log.info("%s: closing windows works again after %d failed rounds", self.definition.name, failures)
                failures, pause = 0, CLOCK_INTERVAL
            if time.monotonic() - last_stats >= _STATS_EVERY:
                last_stats = time.monotonic()
                log.info("%s: %s", self.definition.name, dict(sorted(self.stats.items())))

    async def run_updater(self, service: Service) -> None:
        """Every ``update_seconds``, write the open windows' current values; a task of the state
        table of its own, so closing windows never waits for these writes."""
        if not self._update_seconds:
            return
        while not service.should_stop:
            await service.sleep(self._update_seconds)
            if self._paused():
                continue
            try:
                await self.write_updates()
            except Exception:  # noqa: BLE001 - e.g. a user finalize raising: tried again next time
                log.exception("%s: writing provisional values failed", self.definition.name)

    def _paused(self) -> bool:
        return bool(self.app.rebalancing) or not self.app.flow_control.is_active()

    async def tick(self) -> None:
        """One round of the closer: read the arrival clock, then close every window now due.

        1. Read what the streams promise about each active partition's arrivals still to come.
        2. Hand each promise to its partition's windows (it counts once the partition has been
           processed past the promised offset) and count the promises that became due since.
        3. Fenced: while this worker's lease may have expired its partitions may be another's,
           and a window closed here could not be written; wait (bounded) for a renewal, which
           also keeps the closer from spinning, and close nothing without one.
        4. Close what the watermark has passed; write each final result (or, for a window that
           failed, its dead letter). Nothing waits for the writes: the next flush does.
        """
        partitions = sorted(self._partitions)
        readings = await self._clock.read(self._events_topic, partitions) if partitions else {}
        for partition, promise in readings.items():
            active = self._partitions.get(partition)
            if active is not None:
                active.windows.promise(promise.after_offset, promise.arrived_from, next_offset=active.applied)
        if not await self._results.wait_writable(_LEASE_RECHECK):
            return
        for partition, active in list(self._partitions.items()):
            if active.applied is not None:
                active.windows.processed(active.applied)
            for closed in active.windows.close_due():
                if isinstance(closed, FailedWindow):
                    await self._write_failed(partition, closed)
                else:
                    self.stats["windows_closed"] += 1
                    await self._write(partition, closed)

    async def write_updates(self) -> None:
        """Write the current value of every open window that changed since the last call.

        Best effort: nothing waits for these writes, and they never enter ``_pending``, so they
        can neither hold up nor fail a flush.
        """
        for partition, active in list(self._partitions.items()):
            for window in active.windows.take_updates():
                if self._partitions.get(partition) is not active:
                    break  # given up during a write: its windows are the new owner's now
                address = _address(window)
                if address is None:
                    continue  # the final result logs it and counts it unwritable
                try:
                    payload = _strict_json(result_document(window))
                except ValueError:
                    continue  # not finite: its final result fails and says so
                try:
                    await self._results.write_provisional(address[0], payload)
                except ClosedError:
                    return  # the worker is stopping: its windows' final values are what matter
                self.stats["provisional_values"] += 1

    async def _write(self, partition: int, closed: ClosedWindow) -> None:
        address = _address(closed)
        if address is None:
            log.error("%s: key %r cannot name a KV key; result not written", closed.metric, closed.key)
            self.stats["unwritable"] += 1
            return
        kv_key, subject = address
        payload = _strict_json(result_document(closed))
        try:
            written = await self._results.write_result(kv_key, subject, payload)
        except Exception as exc:  # noqa: BLE001 - recorded: the next flush must fail, not skip it
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            written = failed
        # The window has left the state; until its result is stored, no flush may record that.
        self._pending.append(_Unstored(partition, written))

    async def _write_failed(self, partition: int, failed: FailedWindow) -> None:
        """Dead-letter a window whose result could not be computed: its key, window and error."""
        self.stats["windows_failed"] += 1
        start = _rfc3339(failed.start)
        log.error(
            "%s: window %s [%s, %s) failed and goes to deadletter.error.%s: %s",
            failed.metric, failed.key, start, _rfc3339(failed.end), failed.metric, failed.error,
        )
        document = {
            "metric": failed.metric,
            "key": failed.key,
            "window": {"start": start, "end": _rfc3339(failed.end)},
            "events": failed.events,
            "error": failed.error,
        }
        key_id = ".".join([failed.metric, *failed.key.values(), str(int(failed.start))])
        written = await self._results.dead_letter(
            f"deadletter.error.{failed.metric}",
            _strict_json(document),
            reason=failed.error,
            msg_id=f"window-error:{key_id}",
        )
        self._pending.append(_Unstored(partition, written))

    # -- the state owner protocol (called by the consumer) -------------------------------------

    async def flush(self) -> None:
        """Store results and dead letters, then each partition's changes, then its marker.

        1. Await every pending result and dead letter, including those added meanwhile, until
           none is left. One that failed stays pending (awaited again, it tries again) and the
           flush raises: nothing is recorded past an unstored result, and the consumer commits
           no offset.
        2. With no await in between, take each partition's changes and source offset: a window
           closed (or an event dead-lettered) after this belongs to the next flush.
        3. Write the changes, then the marker; then remove what the marker made unnecessary
           (the protocol: ``tables.compaction.Compaction.stored``).
        """
        await self._store_pending()
        flushed_at_us = round(time.time() * 1_000_000)
        snapshots = [
            (partition, active, active.applied, active.compaction.take(active.repairs, active.windows))
            for partition, active in list(self._partitions.items())
        ]
        await asyncio.gather(*(self._flush_partition(*snapshot, flushed_at_us) for snapshot in snapshots))

    async def _store_pending(self) -> None:
        while self._pending:
            batch = list(self._pending)
            outcomes = await asyncio.gather(*(unstored.write for unstored in batch), return_exceptions=True)
            stored = {id(u) for u, out in zip(batch, outcomes, strict=True) if not isinstance(out, BaseException)}
            self._pending = [u for u in self._pending if id(u) not in stored]
            failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
            if failures:
                log.warning(
                    "%s: %d results or dead letters not stored yet (kept for the next flush): %s",
                    self.definition.name, len(failures), failures[0],
                )
                raise failures[0]

    async def _flush_partition(
        self, partition: int, active: _Active, src: int | None, flush: Flush, flushed_at_us: int
    ) -> None:
        if src is None or (not flush.records and src == active.flushed):
            return
        topic = self.table.changelog_topic
        headers = {SRC_HEADER: str(src).encode()}
        sent = [
            await topic.send(
                key=key.encode(),
                value=None if value is None else json.dumps(value, separators=(",", ":")).encode(),
                partition=partition,
                headers=headers,
            )
            for key, value in flush.records.items()
        ]
        stored = await asyncio.gather(*sent)
        marker = flush.marker(src, flushed_at_us).to_json()
        metadata = await (await topic.send(key=self._marker_key, value=marker, partition=partition, headers=headers))
        active.repairs = {}
        active.flushed = src
        active.changelog_offset = metadata.offset
        purger = self.app.producer if isinstance(self.app.producer, ChangelogPurger) else None
        offsets = [m.offset for m in stored]
        await active.compaction.stored(flush, offsets, metadata.offset, purger, topic.get_topic_name(), partition)

    def resume_offset(self, topic: str, partition: int) -> int | None:
        if topic != self._events_topic:
            return None
        active = self._partitions.get(partition)
        return active.applied if active is not None else None

    # -- partitions coming and going (called by the state table) -------------------------------

    def is_active(self, partition: int) -> bool:
        return partition in self._partitions

    def activate(self, partition: int, restored: Restored) -> None:
        windows = PartitionWindows(self.definition, track_updates=self._update_seconds > 0)
        marker = restored.marker
        if marker is not None:
            windows.load(restored.items)
        self._partitions[partition] = _Active(
            windows=windows,
            applied=marker.src if marker else None,
            flushed=marker.src if marker else None,
            repairs=dict(restored.repairs),
            compaction=Compaction(restored),
        )
        self._wake.set()
        log.info(
            "%s: partition %d resumes at offset %s with %d open windows (%d to repair, %d deletions kept)",
            self.definition.name, partition, marker.src if marker else "start",
            len(restored.items), len(restored.repairs), len(restored.deleted),
        )

    def deactivate(self, partition: int) -> None:
        active = self._partitions.pop(partition, None)
        # Its unstored results go with it: the next owner recovers the partition from the last
        # marker, which is before them, and closes those windows again.
        self._pending = [u for u in self._pending if u.partition != partition]
        if active is not None:
            self._report(partition, active, "given up")

    def report_positions(self, why: str) -> None:
        """Log where each partition stands: applied beyond flushed means events processed here
        that the partition's next owner processes again (a worker killed or fenced); after a
        clean hand-over or a SIGTERM the two are equal."""
        for partition, active in sorted(self._partitions.items()):
            self._report(partition, active, why)

    def _report(self, partition: int, active: _Active, why: str) -> None:
        log.info(
            "%s: partition %d %s at offset %s, flushed up to %s",
            self.definition.name, partition, why, active.applied, active.flushed,
        )

    def changelog_offset(self, partition: int) -> int | None:
        active = self._partitions.get(partition)
        return active.changelog_offset if active is not None else None


def _address(window: ClosedWindow | OpenWindowResult) -> tuple[str, str] | None:
    """The window's KV key and result subject; None when a key part could not name a key."""
    parts = list(window.key.values())
    if not all(_ID.fullmatch(p) for p in parts):
        return None
    return ".".join([window.metric, *parts, str(int(window.start))]), f"results.{window.metric}.{parts[0]}"


class StateTable(faust.Table):
    """The faust table of a windowed metric: its changelog is the state, read back exactly once."""

    def __init__(self, app: faust.App, *, runtime: WindowedRuntime, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._runtime = runtime
        self._replicas: dict[int, ChangelogReplica] = {}

    @Service.task
    async def _closer(self) -> None:
        await self._runtime.run_closer(self)

    @Service.task
    async def _updater(self) -> None:
        await self._runtime.run_updater(self)

    async def on_start(self) -> None:
        await super().on_start()
        await self._runtime._results.start()

    async def on_stop(self) -> None:
        self._runtime.report_positions("stopped")
        with contextlib.suppress(Exception):
            await self._runtime._results.close()
        await super().on_stop()

    def apply_changelog_batch(self, batch: Iterable[EventT]) -> None:
        """Recovery and standby reads: keep a replica per partition (what the changelog says)."""
        marker_key = self._runtime._marker_key
        for event in batch:
            message = event.message
            partition = message.partition
            if self._runtime.is_active(partition):
                continue  # our own writes: the live state is ahead of them
            replica = self._replicas.setdefault(partition, ChangelogReplica())
            headers = dict(message.headers or [])
            src = int(headers[SRC_HEADER])
            value = message.value
            if message.key == marker_key and value is not None:
                replica.mark(Marker.from_json(value), changelog_offset=message.offset)
            elif message.key is not None:
                replica.record(
                    message.key.decode(),
                    None if value is None else json.loads(value),
                    src,
                    changelog_offset=message.offset,
                )

    def persisted_offset(self, tp: TP) -> int | None:
        """How far this worker has read (or written) the partition: recovery reads only the rest."""
        replica = self._replicas.get(tp.partition)
        if replica is not None:
            return replica.changelog_offset
        return self._runtime.changelog_offset(tp.partition)

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        changelog = self.changelog_topic_name
        for tp in revoked:
            if tp.topic == changelog:
                self._runtime.deactivate(tp.partition)
                self._replicas.pop(tp.partition, None)
        # A partition this worker keeps only as a standby is no longer its own: faust does not
        # count it as revoked, but its windows now belong to the new active owner. Left active,
        # they would be closed here too, with the events seen before the move only, racing the
        # owner's complete result into the create-only KV key; and the standby would skip the
        # owner's changelog records as "our own writes". It is read as a standby from now on.
        for tp in assigned & self.app.assignor.assigned_standbys():
            if tp.topic == changelog and self._runtime.is_active(tp.partition):
                self._runtime.deactivate(tp.partition)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        for tp in active_tps:
            if not self._runtime.is_active(tp.partition):
                replica = self._replicas.pop(tp.partition, ChangelogReplica())
                self._runtime.activate(tp.partition, replica.restore())
        await super().on_recovery_completed(active_tps, standby_tps)


class _Wakeup:
    """An event that can be waited on with a timeout, created on the running loop when needed."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def set(self) -> None:
        if self._event is not None:
            self._event.set()

    async def wait(self, timeout: float) -> None:
        if self._event is None:
            self._event = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            pass
        self._event.clear()
