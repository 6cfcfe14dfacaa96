"""The faust side of a windowed metric: its agent, its state table, its results.

A metric module in ``agents/`` defines a :class:`~tables.MetricDefinition` and exposes
``build = windowed_metric(define)``. That gives, per worker:

- an **agent** over the events topic adding each event to its partition's
  :class:`~tables.PartitionWindows` (late events and events that cannot be read are dead-lettered
  with the reason, never dropped);
- a **closer** that wakes when the earliest open window falls due (the watermark advances with
  the wall clock, so an idle stream closes its windows too) and writes each final result once;
- with ``update_seconds`` (``METRICS_UPDATE_SECONDS``), an **updater** that writes, that often,
  the current value of each open fixed window that changed, ``"final": false``, under the key its
  final value will take (best effort, never in the way of a flush or of closing, never over a
  final value; see :mod:`bridges.window_results`). Sessions have none: their start, hence their
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
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import TP, EventT
from mode import Service

from agents.context import AgentContext, ResultWriter
from tables import (
    ChangelogReplica,
    ClosedError,
    ClosedWindow,
    Counted,
    InvalidEventError,
    Late,
    Marker,
    MetricDefinition,
    OpenWindowResult,
    PartitionWindows,
    Restored,
    Session,
    Watermark,
)

__all__ = ["WindowedRuntime", "result_document", "windowed_metric"]

log = logging.getLogger(__name__)

SRC_HEADER = "Src-Offset"
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: how often counters are logged
_STATS_EVERY = 30.0
#: how soon the closer looks again while partitions are moving
_PAUSED_RECHECK = 0.1
#: longest wait for this worker's lease to be renewed before the closer looks again
_LEASE_RECHECK = 1.0


def windowed_metric(
    define: Callable[[int, int], MetricDefinition],
) -> Callable[[faust.App, AgentContext], None]:
    """``build(app, context)`` for a metric module; ``define(window_seconds, grace_seconds)``."""

    def build(app: faust.App, context: AgentContext) -> None:
        definition = define(context.window_seconds, context.grace_seconds)
        runtime = WindowedRuntime(app, definition, context)

        @app.agent(context.events, name=definition.name)
        async def process(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                message = event.message
                await runtime.add(message.partition, message.offset, event.value)

    return build


def result_document(window: ClosedWindow | OpenWindowResult) -> dict[str, Any]:
    """The public JSON of a window (see ``agents.results`` and docs/api.md).

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


class WindowedRuntime:
    """One windowed metric in one worker (see the module docstring)."""

    def __init__(self, app: faust.App, definition: MetricDefinition, context: AgentContext) -> None:
        self.definition = definition
        self.app = app
        self._events_topic = context.events.get_topic_name()
        self._results: ResultWriter = context.results
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

    async def add(self, partition: int, offset: int, raw: bytes) -> None:
        active = self._partitions.get(partition)
        if active is None:
            return  # a message of a partition given up meanwhile; its new owner reads it
        now = time.time()
        try:
            outcome = active.windows.add(json.loads(raw), now)
        except InvalidEventError as exc:
            await self._reject("invalid", partition, offset, raw, str(exc))
        except ValueError as exc:  # not JSON
            await self._reject("invalid", partition, offset, raw, f"not a JSON event: {exc}")
        except Exception as exc:  # noqa: BLE001 - a poison event must not stop the partition
            log.exception("%s: event %s[%d]@%d raised", self.definition.name, self._events_topic, partition, offset)
            await self._reject("error", partition, offset, raw, f"{type(exc).__name__}: {exc}")
        else:
            if isinstance(outcome, Late):
                await self._reject("late", partition, offset, raw, outcome.reason)
            elif isinstance(outcome, Counted):
                self.stats["counted"] += 1
                due = active.windows.next_close_at(now)
                if due is not None and due < self._wake.planned:
                    self._wake.set()  # e.g. a jump in event time made a window due now
            else:
                self.stats["ignored"] += 1
        active.applied = offset + 1

    async def _reject(self, kind: str, partition: int, offset: int, raw: bytes, reason: str) -> None:
        self.stats[kind] += 1
        metric = self.definition.name
        written = await self._results.dead_letter(
            f"deadletter.{kind}.{metric}",
            raw,
            reason=reason,
            msg_id=f"{kind}:{metric}:{partition}:{offset}",
        )
        self._pending.append(_Unstored(partition, written))

    # -- closing ------------------------------------------------------------------------------

    async def run_closer(self, service: Service) -> None:
        """Close windows as they fall due; runs as a task of the state table."""
        last_stats = time.monotonic()
        while not service.should_stop:
            await self._wake.wait(self._seconds_to_next_close())
            if self._paused():
                # Partitions are moving: whoever holds them after closes them. A window may be
                # due meanwhile, so look again shortly (activate() wakes this sooner) rather
                # than spin on a wait of zero.
                await self._wake.wait(_PAUSED_RECHECK)
                continue
            try:
                await self.close_due(time.time())
            except Exception:  # noqa: BLE001 - e.g. a user finalize raising: the windows stay open
                log.exception("%s: closing windows failed; trying again", self.definition.name)
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

    def _seconds_to_next_close(self) -> float:
        now = time.time()
        times = [t for a in self._partitions.values() if (t := a.windows.next_close_at(now)) is not None]
        return min(max(0.0, min(times) - now), 1.0) if times else 1.0

    async def close_due(self, now: float) -> None:
        # Fenced: while this worker's lease may have expired, its partitions may be another's,
        # and a window closed here could not be written. Waiting (bounded) for a renewal rather
        # than returning at once keeps the closer, for which the window stays due, from spinning.
        if not await self._results.wait_writable(_LEASE_RECHECK):
            return
        for partition, active in list(self._partitions.items()):
            for closed in active.windows.close_due(now):
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
                payload = json.dumps(result_document(window), separators=(",", ":")).encode()
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
        payload = json.dumps(result_document(closed), separators=(",", ":")).encode()
        try:
            written = await self._results.write_result(kv_key, subject, payload)
        except Exception as exc:  # noqa: BLE001 - recorded: the next flush must fail, not skip it
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            written = failed
        # The window has left the state; until its result is stored, no flush may record that.
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
        3. Write the changes, then the marker.
        """
        await self._store_pending()
        flushed_at_us = round(time.time() * 1_000_000)
        snapshots = [
            (partition, active, active.applied, {**active.repairs, **active.windows.take_changes()})
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
        self, partition: int, active: _Active, src: int | None, changes: dict[str, Any], flushed_at_us: int
    ) -> None:
        if src is None or (not changes and src == active.flushed):
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
            for key, value in changes.items()
        ]
        await asyncio.gather(*sent)
        marker = json.dumps({"src": src, "flushed_at_us": flushed_at_us}).encode()
        metadata = await (await topic.send(key=self._marker_key, value=marker, partition=partition, headers=headers))
        active.repairs = {}
        active.flushed = src
        active.changelog_offset = metadata.offset

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
            windows.load(_frozen_watermark(restored.items, self.definition.name, marker, time.time()))
        self._partitions[partition] = _Active(
            windows=windows,
            applied=marker.src if marker else None,
            flushed=marker.src if marker else None,
            repairs=dict(restored.repairs),
        )
        self._wake.set()
        log.info(
            "%s: partition %d resumes at offset %s with %d open windows (%d to repair)",
            self.definition.name, partition, marker.src if marker else "start",
            len(restored.items), len(restored.repairs),
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


def _frozen_watermark(
    items: Iterable[tuple[str, Mapping[str, Any]]], metric: str, marker: Marker, now: float
) -> list[tuple[str, Mapping[str, Any]]]:
    """The items with the watermark frozen at the flush: downtime must not count as stream time.

    Otherwise every window open at the crash would close the moment the state is restored and
    the events replayed after it would be late, changing results that must come out exactly as
    if nothing had happened.
    """
    key = f"{metric}.watermark"
    out = []
    for storage_key, value in items:
        if storage_key == key and value:
            at_flush = Watermark.from_json(value, key=storage_key).value_us(marker.flushed_at_us)
            value = {"base_us": at_flush, "wall_us": round(now * 1_000_000)}
        out.append((storage_key, value))
    return out


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
                data = json.loads(value)
                replica.mark(Marker(data["src"], data["flushed_at_us"]), changelog_offset=message.offset)
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
    """An event that can be waited on with a timeout, created on the running loop when needed.

    ``planned`` is when the current wait ends on its own, so callers wake it only if sooner.
    """

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self.planned = 0.0

    def set(self) -> None:
        if self._event is not None:
            self._event.set()

    async def wait(self, timeout: float) -> None:
        if self._event is None:
            self._event = asyncio.Event()
        self.planned = time.time() + timeout
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            pass
        self._event.clear()
