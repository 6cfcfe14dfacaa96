"""The faust table of a windowed metric: its changelog is the state, read back exactly once.

The runtime writes the changelog (see :meth:`~agents.windowed.runtime.WindowedRuntime.flush`);
this table reads it back. Recovery and standby reads keep a :class:`~tables.ChangelogReplica` per
partition, and a partition this worker becomes active for is handed to the runtime as the
replica restores it: its open windows as of the last marker, and the keys to repair. Partitions
given up, or kept only as standbys, are taken from the runtime on a rebalance. The table also
hosts the runtime's two loops, the closer and the updater, as its tasks.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from typing import Any, Protocol

import faust
from faust.types import TP, EventT
from mode import Service

from agents.windowed.context import ResultWriter
from tables import ChangelogReplica, Marker, Restored

__all__ = ["PartitionOwner", "SRC_HEADER", "StateTable", "changelog_topic", "state_table_name"]

#: the header of every changelog record: the source offset the state it belongs to reflects
SRC_HEADER = "Src-Offset"


def state_table_name(metric: str) -> str:
    """The name of a metric's state table."""
    return f"{metric}-windows"


def changelog_topic(app_id: str, metric: str) -> str:
    """The changelog topic of ``metric``'s state table in the app ``app_id`` (faust names a
    table's changelog ``<app id>-<table>-changelog``); each version of a metric is an app of its
    own, named after its series."""
    return f"{app_id}-{state_table_name(metric)}-changelog"


class PartitionOwner(Protocol):
    """What the table drives: the windowed runtime, one partition at a time."""

    def is_active(self, partition: int) -> bool: ...

    def activate(self, partition: int, restored: Restored) -> None: ...

    def deactivate(self, partition: int) -> None: ...

    def changelog_offset(self, partition: int) -> int | None:
        """Offset of this worker's last marker in the partition's changelog, if it is active."""
        ...

    def report_positions(self, why: str) -> None: ...

    async def run_closer(self, service: Service) -> None: ...

    async def run_updater(self, service: Service) -> None: ...


class StateTable(faust.Table):
    """The faust table of a windowed metric: its changelog is the state, read back exactly once."""

    def __init__(
        self,
        app: faust.App,
        *,
        runtime: PartitionOwner,
        results: ResultWriter,
        marker_key: bytes,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._runtime = runtime
        #: started and closed with the table: the runtime writes through it while the table runs
        self._results = results
        #: the changelog key of the runtime's markers
        self._marker_key = marker_key
        self._replicas: dict[int, ChangelogReplica] = {}

    @Service.task
    async def _closer(self) -> None:
        await self._runtime.run_closer(self)

    @Service.task
    async def _updater(self) -> None:
        await self._runtime.run_updater(self)

    async def on_start(self) -> None:
        await super().on_start()
        await self._results.start()

    async def on_stop(self) -> None:
        self._runtime.report_positions("stopped")
        with contextlib.suppress(Exception):
            await self._results.close()
        await super().on_stop()

    def apply_changelog_batch(self, batch: Iterable[EventT]) -> None:
        """Recovery and standby reads: keep a replica per partition (what the changelog says)."""
        for event in batch:
            message = event.message
            partition = message.partition
            if self._runtime.is_active(partition):
                continue  # our own writes: the live state is ahead of them
            replica = self._replicas.setdefault(partition, ChangelogReplica())
            headers = dict(message.headers or [])
            src = int(headers[SRC_HEADER])
            value = message.value
            if message.key == self._marker_key and value is not None:
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

