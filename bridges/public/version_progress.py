"""How far a metric's version has come through the stored events: its backfill, kept by its workers.

A metric's version is a consumer group of its own (named after its series), so when its first
worker starts it reads the events topic from the start of the events' retention: a new version,
or a fixed one, recomputes its finals from every retained event while the older version keeps
serving. Readers take the newest *complete* version (:func:`contract.registry.default_version`),
and this module is what says when a version is complete. In each worker of the version:

1. At start, read ``backfill.<series>`` in the registry bucket. When there is none, this is the
   version's first worker: note each events partition's end offset (the offset after its last
   record) as the version's target, and create the record; creation is first-writer-wins, so of
   workers starting together one target is kept, and the others read it.
2. While the record says incomplete, every ``interval`` seconds: read the group's committed
   offsets (:class:`~bridges.transport.lag.LagReader`; a record is committed only once the
   finals it closed are stored) and count the records still to commit before each partition's
   target, those the stream still holds.
3. Write the count into the record, stating the revision read (another worker counting at the
   same time makes one of the writes fail; it reads the record again). When none remain, the
   record says ``complete`` with the time, for good, and this worker stops counting.

Every worker of the group counts the whole group, not only its own partitions: a worker's
partitions move in rebalances, and a stopped worker's partitions must still be counted. A version
that never had a record (it ran before versions were tracked) counts as complete.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final

from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from bridges.public.metric_registry import ensure_registry_bucket
from bridges.public.streams import PublicStreams
from bridges.transport.lag import LagReader, PartitionLag
from bridges.transport.session import TransportSession
from contract.registry import BACKFILL_PREFIX, Backfill, InvalidDescription
from tables.errors import StreamsError

__all__ = ["VersionProgress", "remaining_records"]

log = logging.getLogger(__name__)

#: seconds between two counts while the version is still going through the stored events
COUNT_INTERVAL: Final = 2.0


def remaining_records(targets: Mapping[int, int], lags: list[PartitionLag]) -> int:
    """The records before each partition's target the group has not committed, of those the
    stream still holds (records aged out of the stream cannot be read by anyone)."""
    remaining = 0
    for lag in lags:
        target = targets.get(lag.partition)
        if target is None:
            continue  # a partition added after the version started: not part of its backfill
        position = lag.earliest if lag.committed is None else max(lag.committed, lag.earliest)
        remaining += max(0, target - position)
    return remaining


class VersionProgress:
    """Keeps the backfill record of the version this worker runs (see the module docstring); an
    async context manager.

    Args:
        session: the worker's transport session (acquired by the caller while this runs).
        streams: the deployment's public names (the registry bucket's replicas).
        series: the version's series, which is also its consumer group.
        topic: the events topic.
        interval: seconds between two counts.
        now: the wall clock.
    """

    def __init__(
        self,
        session: TransportSession,
        streams: PublicStreams,
        series: str,
        *,
        topic: str,
        interval: float = COUNT_INTERVAL,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._session = session
        self._streams = streams
        self._series = series
        self._topic = topic
        self._interval = interval
        self._now = now
        self._key = f"{BACKFILL_PREFIX}.{series}"
        self._kv: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> VersionProgress:
        """Step 1; then follows the version in the background until it is complete."""
        self._kv = await ensure_registry_bucket(self._session.js, self._streams, update_limits=True)
        record, _ = await self._read_or_create()
        if not record.complete:
            self._task = asyncio.create_task(self._follow(), name=f"backfill {self._series}")
        return self

    async def close(self) -> None:
        """Idempotent; stops counting."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def __aenter__(self) -> VersionProgress:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def following(self) -> bool:
        """Whether this worker still counts (the version is not complete yet)."""
        return self._task is not None and not self._task.done()

    async def _read_or_create(self) -> tuple[Backfill, int]:
        """The record and its revision; created with this moment's targets if there is none."""
        kv = self._require_kv()
        while True:
            try:
                entry = await kv.get(self._key)
            except KeyNotFoundError:
                pass
            else:
                if entry.value:
                    return Backfill.parse(entry.value), entry.revision or 0
            bounds = await self._bounds()
            targets = {partition: end for partition, (_, end) in bounds.items()}
            remaining = sum(end - earliest for earliest, end in bounds.values())
            record = Backfill(
                series=self._series,
                started_at=self._now(),
                targets=targets,
                remaining=0,
                complete=False,
            ).counted(remaining, self._now())
            try:
                revision = await kv.create(self._key, record.to_json_bytes())
            except KeyWrongLastSequenceError:
                continue  # another worker of the version created it first: read theirs
            log.info("%s: going through %d stored records, up to %s", self._series, remaining, targets)
            return record, revision

    async def _bounds(self) -> dict[int, tuple[int, int]]:
        """Each events partition's ``(earliest, end)`` offsets now."""
        registry = self._session.registry
        spec = await registry.lookup(self._topic)
        if spec is None:
            return {}  # no event stored yet: nothing to go through
        bounds = await asyncio.gather(*(registry.offsets(self._topic, p) for p in range(spec.partitions)))
        return dict(enumerate(bounds))

    async def _follow(self) -> None:
        """Steps 2 and 3, until the record says complete."""
        lag = LagReader(self._session.js, self._session.naming, self._topic, groups=[self._series])
        started = time.monotonic()
        while True:
            await asyncio.sleep(self._interval)
            try:
                if await self._count(lag):
                    log.info("%s: complete after %.1f s", self._series, time.monotonic() - started)
                    return
            except (StreamsError, NatsError, InvalidDescription, OSError, TimeoutError) as exc:
                # NATS away or a record someone else broke: the next count tries again.
                log.warning("%s: counting the backfill failed; trying again: %r", self._series, exc)

    async def _count(self, lag: LagReader) -> bool:
        """One count; whether the version is complete."""
        record, revision = await self._read_or_create()
        if record.complete:
            return True
        counted = record.counted(remaining_records(record.targets, await lag.read()), self._now())
        if counted != record:
            try:
                await self._require_kv().update(self._key, counted.to_json_bytes(), last=revision)
            except KeyWrongLastSequenceError:
                return False  # another worker wrote first; the next count reads theirs
        return counted.complete

    def _require_kv(self) -> KeyValue:
        assert self._kv is not None, "started"
        return self._kv
