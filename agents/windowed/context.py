"""What the wiring hands an agent module: everything it may use, nothing it must look up.

``app`` builds one :class:`AgentContext` per worker and calls the module's
``build(app, context)``; agents never import ``app`` or ``bridges`` (imports point
``app -> agents, bridges -> tables``), so what they need from NATS arrives here as protocols.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

import faust
from prometheus_client import CollectorRegistry

from contract.registry import MetricDescription
from tables.changelog import StateOwner
from tables.compaction import ChangelogPurger
from tables.watermark import Promise

__all__ = ["AgentContext", "ArrivalClock", "ResultWriter"]


class ArrivalClock(Protocol):
    """What the streams promise about the arrivals still to come (implemented in ``bridges``)."""

    async def read(self, topic: str, partitions: Collection[int]) -> Mapping[int, Promise]:
        """A promise per partition of ``topic`` that could be read (a missing one is left out):
        every record after ``after_offset`` arrived at or after ``arrived_from``.

        Raises a :class:`~tables.errors.StreamsError` when NATS cannot be read.
        """
        ...


class ResultWriter(Protocol):
    """Where closed windows and rejected events go (implemented in ``bridges``).

    Final results and dead letters are the decisions of a partition's owner, and this worker may
    stop being one without knowing yet (paused past its group lease). So the writer is fenced:

    1. :meth:`wait_writable` says whether this worker may decide now; the runtime closes no
       window while it says no (a window closed then could not be written).
    2. Every result or dead letter is sent only while that still holds for the membership it was
       accepted under; meanwhile it waits (bounded), and it fails once that membership is over.
    3. The awaitable of a write completes when it is stored; if it failed, awaiting it again
       tries again. So a caller keeps the writes that failed and awaits them again later, and
       records nothing as written (no changelog marker, no offset) until they succeed.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def wait_writable(self, timeout: float) -> bool:
        """Wait, at most ``timeout`` seconds, until this worker may close windows and write their
        results (its lease is valid); False if it may not by then. Never returns early with
        False, so a caller looping on it does not spin."""
        ...

    async def write_result(self, kv_key: str, subject: str, payload: bytes) -> Awaitable[None]:
        """Store a window's final result once under ``kv_key``, then publish it on ``subject``.

        Returns once the write is under way; the awaitable completes when it is stored and
        published, and may be awaited again after a failure (see the class docstring).
        """
        ...

    async def write_provisional(self, kv_key: str, payload: bytes) -> Awaitable[None]:
        """Write the current value of an open window (``"final": false``) under ``kv_key``.

        Best effort, and never over a final value. Returns once the write is under way; the
        awaitable, which never fails, completes when the value is stored, superseded by a newer
        one or dropped. Nothing needs to wait for it.
        """
        ...

    async def dead_letter(
        self, subject: str, payload: bytes, *, reason: str, msg_id: str
    ) -> Awaitable[None]:
        """Publish a rejected event with the reason; ``msg_id`` makes a replay a no-op.

        The awaitable behaves as :meth:`write_result`'s.
        """
        ...


@dataclass(frozen=True)
class AgentContext:
    #: the topic every ingested event is written to, keyed by student id, raw JSON values
    events: faust.TopicT
    #: window size and grace of the learning metrics, in seconds (from the settings)
    window_seconds: int
    grace_seconds: int
    #: results and dead letters of windowed metrics
    results: ResultWriter
    #: makes the consumer flush this state before committing and resume where it says
    register_state: Callable[[StateOwner], None]
    #: how far arrival time has progressed on each partition: what closes windows
    clock: ArrivalClock
    #: seconds between provisional writes of the open windows that changed; 0: final results only
    update_seconds: float = 0.0
    #: where the runtime's metrics go (the worker's /metrics); None: counted, never exported
    registry: CollectorRegistry | None = None
    #: removes changelog records that closed windows leave (tables.compaction); None: kept
    purger: ChangelogPurger | None = None
    #: told the description of the metric ``build`` runs, which the worker publishes to the
    #: metric registry when it starts (contract.registry): how every reader learns the metric
    describe: Callable[[MetricDescription], None] | None = None
