"""``WindowedRuntime``: one windowed metric in one worker, from events in to results out.

It adds each event of each record to its partition's :class:`~tables.PartitionWindows`
(dead-lettering what cannot be counted), closes the windows the arrival clock says are due and
writes their results (:meth:`WindowedRuntime.tick`), and flushes its state at every commit
(:meth:`WindowedRuntime.flush`, where the commit path is written down). What it writes about each
event and window is decided by :class:`~agents.windowed.decisions.MetricDecisions`, the code the
test driver runs too; this module does the I/O: when, through which writer, under which lease. Its
:class:`~agents.windowed.state_table.StateTable` reads the changelog back and hands it the
partitions this worker owns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable

import faust
from mode import Service
from prometheus_client import CollectorRegistry

from agents.windowed.context import AgentContext, ArrivalClock, ResultWriter
from agents.windowed.decisions import DeadLetterWrite, FinalWrite, MetricDecisions
from agents.windowed.monitoring import runtime_metrics
from agents.windowed.partitions import ActivePartition, UnstoredWrite, Wakeup
from agents.windowed.state_table import SRC_HEADER, StateTable, state_table_name
from tables import ClosedError, ClosedWindow, MetricDefinition, PartitionWindows, Restored
from tables.compact_json import compact_encoder
from tables.compaction import ChangelogPurger, Compaction, Flush

__all__ = ["CLOCK_INTERVAL", "WindowedRuntime"]

log = logging.getLogger(__name__)
#: a window's state as its changelog record holds it (json.dumps(value, separators=(",", ":")))
_changelog_json = compact_encoder()

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


class WindowedRuntime:
    """One windowed metric in one worker (see the module docstring)."""

    def __init__(self, app: faust.App, definition: MetricDefinition, context: AgentContext) -> None:
        self.definition = definition
        self.app = app
        self._events_topic = context.events.get_topic_name()
        self._results: ResultWriter = context.results
        self._clock: ArrivalClock = context.clock
        self.stats: Counter[str] = Counter()
        #: what to write about each event and window (shared with the test driver)
        self._decisions = MetricDecisions(
            definition, stats=self.stats, provisional=context.update_seconds > 0, source=self._events_topic
        )
        self._update_seconds = context.update_seconds if self._decisions.provisional else 0.0
        self._purger: ChangelogPurger | None = context.purger
        self._partitions: dict[int, ActivePartition] = {}
        #: results and dead letters not yet stored: no flush records anything past them
        self._pending: list[UnstoredWrite] = []
        self._wake = Wakeup()
        self._marker_key = f"{definition.name}.marker".encode()
        #: read by /metrics with ``stats`` (see :mod:`agents.windowed.monitoring`)
        self.metrics = runtime_metrics(self, definition.grace_us / 1e6, context.registry or CollectorRegistry())
        self.table = StateTable(
            app,
            runtime=self,
            results=self._results,
            marker_key=self._marker_key,
            name=state_table_name(definition.name),
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
        for letter in self._decisions.read_record(active.windows, partition, offset, raw, stored_at):
            await self._dead_letter(partition, letter)
        active.applied = offset + 1

    async def _dead_letter(self, partition: int, letter: DeadLetterWrite) -> None:
        written = await self._results.dead_letter(
            letter.subject, letter.payload, reason=letter.reason, msg_id=letter.msg_id
        )
        self._pending.append(UnstoredWrite(partition, written))

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
            except Exception as exc:
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
            except Exception:
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
        now = time.time()
        for partition, active in list(self._partitions.items()):
            if active.applied is not None:
                active.windows.processed(active.applied)
            for closed in active.windows.close_due():
                if isinstance(closed, ClosedWindow):
                    self.metrics.closed(closed.end, now)
                write = self._decisions.closed(closed, partition)
                if isinstance(write, FinalWrite):
                    await self._write(partition, write)
                elif write is not None:
                    await self._dead_letter(partition, write)

    async def write_updates(self) -> None:
        """Write the current value of every open window that changed since the last call.

        Best effort: nothing waits for these writes, and they never enter ``_pending``, so they
        can neither hold up nor fail a flush.
        """
        for partition, active in list(self._partitions.items()):
            for update in self._decisions.updates(active.windows):
                if self._partitions.get(partition) is not active:
                    break  # given up during a write: its windows are the new owner's now
                try:
                    await self._results.write_provisional(update.kv_key, update.payload)
                except ClosedError:
                    return  # the worker is stopping: its windows' final values are what matter
                self.stats["provisional_values"] += 1

    async def _write(self, partition: int, final: FinalWrite) -> None:
        try:
            written = await self._results.write_result(final.kv_key, final.subject, final.payload)
        except Exception as exc:  # noqa: BLE001 - recorded: the next flush must fail, not skip it
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            written = failed
        # The window has left the state; until its result is stored, no flush may record that.
        self._pending.append(UnstoredWrite(partition, written, final=True))

    # -- the state owner protocol (called by the consumer) -------------------------------------

    async def flush(self) -> None:
        """Store this metric's state before the offsets that depend on it: the commit path.

        A commit (faust's commit timer, a revoke, a stop) runs ``CommittingConsumer._commit_offsets``
        (``bridges/transport/committing.py``) with the offsets of the events faust saw acked, which
        the state already reflects; a revoke first lets the agents finish and commits that
        (``_drain``). It calls this flush, then commits the offsets. In order:

        1. **Lease.** A worker whose group lease may have expired commits nothing, not even this
           flush (``TransportSession.lease``, ``bridges/group/lease_clock.py``): its partitions
           may be another's, and its watermark may count the pause as stream time.
        2. **Results and dead letters stored** (``_store_pending``): every write handed to the
           ``ResultWriter`` (``bridges/public/window_results.py``, sent only under a valid lease:
           ``bridges/public/fenced_writes.py``) is awaited, those added meanwhile too, until none
           is left. One that failed stays pending (awaited again, it tries again) and the flush
           raises: nothing is recorded past an unstored result.
        3. **Snapshot**, with no await in between: each partition's changed windows
           (``PartitionWindows.take_changes``, ``tables/windowed.py``) plus the keys recovery
           left to repair, or its whole open state when rewriting the changelog is due
           (``Compaction.take``, ``tables/compaction.py``), with the closed horizon and its
           source offset (``applied``, the next event to apply). A window closed, or an event
           dead-lettered, after this belongs to the next flush.
        4. **Changed windows to the changelog** (``_flush_partition``, partitions side by side):
           one record per window, each tagged with that source offset (``SRC_HEADER``), all
           awaited until stored; a partition with no change and no progress writes nothing (unless
           the leftovers of an earlier writer are still to be counted: ``Compaction.check_due``), and
           one whose records were not all stored keeps them for the next flush. The
           transport's ``Producer.send`` (``bridges/transport/producer.py``) states the changelog
           partition's fence, written by ``Consumer._fence`` on assignment: once a newer owner
           has fenced it, the write is refused.
        5. **Marker** ``{src, flushed_at_us, closed_us}`` under ``<metric>.marker``, tagged the
           same: the commit point of the state (:mod:`tables.changelog`). A flush without one
           never counts. Only then are the records it made unnecessary purged
           (``Compaction.stored`` has that protocol); a purge that fails is retried later and
           never fails the flush.
        6. **Offsets committed**, back in ``_commit_offsets``: faust flushes the producer
           (``Producer.flush``), then ``CommittingConsumer._commit`` writes each partition's offset by
           compare-and-set against the revision this owner last wrote, first on assignment
           (``OffsetStore.commit``, ``bridges/transport/offsets.py``): once a newer owner has
           claimed the partition, the commit is refused.

        A failure in 2-5 skips 6. A fenced write or commit makes the consumer check its
        membership (``GroupCoordinator.verify_membership``), so a worker taken over rejoins; a
        write not stored yet (``BrokenError``) is tried again at the next commit, and while
        JetStream has no room (``StorageFull``) the consumer spaces the commits out until one
        goes through. Recovery
        (``StateTable``, ``tables.ChangelogReplica``) trusts only records tagged at or below the
        last marker and resumes reading there, so whichever step a worker dies at, every event
        counts once.
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
            outcomes = await _outcomes([unstored.write for unstored in batch], [u.failed for u in batch])
            stored = {id(u) for u, out in zip(batch, outcomes, strict=True) if out is None}
            finals = [u.final for u in batch if id(u) in stored]
            self.stats["finals_written"] += sum(finals)
            self.stats["finals_refused"] += sum(u.final for u in batch) - sum(finals)
            for unstored, outcome in zip(batch, outcomes, strict=True):
                unstored.failed = outcome is not None
            self._pending = [u for u in self._pending if id(u) not in stored]
            failures = [outcome for outcome in outcomes if outcome is not None]
            if failures:
                log.warning(
                    "%s: %d results or dead letters not stored yet (kept for the next flush): %s",
                    self.definition.name, len(failures), failures[0],
                )
                raise failures[0]

    async def _flush_partition(
        self, partition: int, active: ActivePartition, src: int | None, flush: Flush, flushed_at_us: int
    ) -> None:
        # An idle partition still flushes to count, or to rewrite away, an earlier writer's leftovers.
        leftovers = flush.rewrite or (self._purger is not None and active.compaction.check_due)
        if src is None or (not flush.records and src == active.flushed and not leftovers):
            return
        topic = self.table.changelog_topic
        headers = {SRC_HEADER: str(src).encode()}
        try:
            sent = [
                await topic.send(
                    key=key.encode(),
                    value=None if value is None else _changelog_json(value).encode(),
                    partition=partition,
                    headers=headers,
                )
                for key, value in flush.records.items()
            ]
            stored = await asyncio.gather(*sent)
            marker = flush.marker(src, flushed_at_us).to_json()
            metadata = await (await topic.send(key=self._marker_key, value=marker, partition=partition, headers=headers))
        except BaseException:
            # Taken from the windows, not known to be stored (the store full, NATS away): the
            # next flush writes them again, each unless a newer change of its key replaces it.
            active.repairs = flush.records
            raise
        active.repairs = {}
        active.flushed = src
        active.changelog_offset = metadata.offset
        offsets = [m.offset for m in stored]
        await active.compaction.stored(
            flush, offsets, metadata.offset, self._purger, topic.get_topic_name(), partition
        )

    def resume_offset(self, topic: str, partition: int) -> int | None:
        if topic != self._events_topic:
            return None
        active = self._partitions.get(partition)
        return active.applied if active is not None else None

    # -- partitions coming and going (called by the state table) -------------------------------

    def is_active(self, partition: int) -> bool:
        return partition in self._partitions

    def open_windows(self) -> dict[int, PartitionWindows]:
        """The windows of each partition this worker processes (what /metrics reads)."""
        return {partition: active.windows for partition, active in self._partitions.items()}

    def activate(self, partition: int, restored: Restored) -> None:
        windows = self._decisions.new_windows()
        marker = restored.marker
        if marker is not None:
            windows.load(restored.items)
        self._partitions[partition] = ActivePartition(
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
            extra={"metric": self.definition.name, "partition": partition},
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

    def _report(self, partition: int, active: ActivePartition, why: str) -> None:
        log.info(
            "%s: partition %d %s at offset %s, flushed up to %s",
            self.definition.name, partition, why, active.applied, active.flushed,
            extra={"metric": self.definition.name, "partition": partition},
        )

    def changelog_offset(self, partition: int) -> int | None:
        active = self._partitions.get(partition)
        return active.changelog_offset if active is not None else None


async def _outcomes(writes: list[Awaitable[None]], failed: list[bool]) -> list[BaseException | None]:
    """Await every write; what each ended with (None: stored).

    A write awaited for the first time is under way already (the writer sends it before handing
    it back), so awaiting those one after the other takes as long as awaiting them all at once,
    without the task ``gather`` makes for each (thousands per flush when many windows close). One
    that failed before starts its next attempt when awaited: those are awaited all at once, so
    that their attempts run side by side.
    """
    again = [write for write, before in zip(writes, failed, strict=True) if before]
    retrying = asyncio.gather(*again, return_exceptions=True) if again else None
    outcomes: list[BaseException | None] = []
    try:
        for write, before in zip(writes, failed, strict=True):
            if before:
                outcomes.append(None)  # filled in below
                continue
            try:
                await write
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the flush itself is cancelled
                outcomes.append(exc)  # the write's attempt was cancelled
            except Exception as exc:  # noqa: BLE001 - the write's outcome, reported by the caller
                outcomes.append(exc)
            else:
                outcomes.append(None)
        if retrying is not None:
            results = iter(await retrying)
            outcomes = [next(results) if before else outcome for outcome, before in zip(outcomes, failed, strict=True)]
    except BaseException:
        if retrying is not None:
            retrying.cancel()
        raise
    return [outcome if isinstance(outcome, BaseException) else None for outcome in outcomes]
