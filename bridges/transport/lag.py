"""How far behind each consumer group is on a topic, partition by partition, read from NATS.

The lag of a partition is its end offset minus the group's committed offset, in records (a
record of the events topic is a batch of events): the end offset is the partition stream's
highwater (the last sequence + 1: offsets are stream sequences, see :mod:`bridges.naming`), the
committed offset the next one the group reads (:mod:`bridges.transport.offsets`). A partition the
group never committed, or whose committed records have aged out, lags by every record the
stream still holds.

Read from NATS rather than from the workers themselves: a worker that is stopped, paused or gone
cannot say how far behind it is, and that is when the lag matters most. Any process can read any
group's lag, so the web process reads every group's and each worker its own group's (a live
worker then also reports the partitions of a stopped one).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from bridges.naming import Naming, decode_token, encode_token
from bridges.transport.topics import TopicRegistry

__all__ = ["LagReader", "PartitionLag"]


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    #: the oldest offset the stream still holds and the one after its last record
    earliest: int
    end: int
    #: the next offset the group reads; None: it never committed one
    committed: int | None

    @property
    def lag(self) -> int:
        """Records of the partition the group has not committed yet."""
        start = self.earliest if self.committed is None else max(self.committed, self.earliest)
        return max(0, self.end - start)


class LagReader:
    """Reads the lag of consumer groups on one topic; :meth:`read` whenever a figure is wanted.

    Args:
        js: a JetStream context (its connection is not owned).
        naming: the deployment's names (``NATS_PREFIX``).
        topic: the topic whose partitions are read.
        groups: the groups to read; None: every group that has committed an offset of ``topic``.
    """

    def __init__(
        self, js: JetStreamContext, naming: Naming, topic: str, *, groups: Collection[str] | None = None
    ) -> None:
        self._js = js
        self._naming = naming
        self._topic = topic
        self._groups = None if groups is None else tuple(groups)
        self._registry = TopicRegistry(js, naming)
        self._started = False
        self._offsets: KeyValue | None = None

    async def read(self) -> list[PartitionLag]:
        """The lag of every partition of the topic for each group, by group and partition; none
        before the topic is declared. Raises what nats-py raises when NATS cannot be read."""
        if not self._started:
            await self._registry.start()
            self._started = True
        spec = await self._registry.lookup(self._topic)
        if spec is None:
            return []
        committed = await self._committed()
        groups = sorted(self._groups if self._groups is not None else {group for group, _ in committed})
        bounds = await asyncio.gather(*(self._registry.offsets(self._topic, p) for p in range(spec.partitions)))
        return [
            PartitionLag(group, self._topic, partition, earliest, end, committed.get((group, partition)))
            for group in groups
            for partition, (earliest, end) in enumerate(bounds)
        ]

    async def _committed(self) -> dict[tuple[str, int], int | None]:
        """(group, partition) -> committed offset, for every key of the topic in one watch."""
        kv = await self._bucket()
        if kv is None:
            return {}
        groups = "*" if self._groups is None or len(self._groups) != 1 else encode_token(self._groups[0])
        watcher = await kv.watch(f"{groups}.{encode_token(self._topic)}.*", ignore_deletes=True)
        found: dict[tuple[str, int], int | None] = {}
        try:
            async for entry in watcher:
                if entry is None:  # the last value of every key has been delivered
                    break
                group, _, partition = entry.key.split(".")
                offset = json.loads(entry.value or b"{}").get("offset")
                found[decode_token(group), int(partition)] = offset
        finally:
            await watcher.stop()
        return found

    async def _bucket(self) -> KeyValue | None:
        """The offsets bucket, once some worker has made it."""
        if self._offsets is None:
            try:
                self._offsets = await self._js.key_value(self._naming.offsets_bucket)
            except (BucketNotFoundError, NotFoundError):
                return None
        return self._offsets
