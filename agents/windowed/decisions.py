"""What a windowed metric decides, without I/O: records in, what to write out.

The worker's :class:`~agents.windowed.runtime.WindowedRuntime` and the test driver
(:class:`~agents.windowed.driver.MetricDriver`) both decide through :class:`MetricDecisions`, so
a test run through the driver sees exactly the writes a worker would make:

- :meth:`MetricDecisions.read_record`: the events of one record of the events topic into a
  partition's windows, a dead letter for each one that cannot count (not JSON, unreadable by
  the metric, an aggregator raising on it, late), and the record's watermark promise;
- :meth:`MetricDecisions.closed`: what is written about a window ``close_due`` returned: its
  final result (KV key, result subject, document), or the dead letter of a window that failed;
- :meth:`MetricDecisions.updates`: the provisional values of the open windows that changed.

How and when they are written is the caller's: the runtime hands them to its
:class:`~agents.windowed.context.ResultWriter` (fenced, awaited before each flush), the driver
keeps them. Counts go to a ``Counter`` the caller may share (the runtime's ``stats``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agents.windowed.documents import failed_document, result_address, result_document, rfc3339, strict_json
from agents.windowed.parsing import loads
from contract.names import metric_series
from tables import (
    ClosedWindow,
    Counted,
    Duplicate,
    FailedWindow,
    InvalidEventError,
    Late,
    MetricDefinition,
    PartitionWindows,
    Session,
)
from tables.batch import BATCH_PREFIX, decode_record

__all__ = ["DeadLetterWrite", "FinalWrite", "MetricDecisions", "ProvisionalWrite", "worker_definition"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FinalWrite:
    """A closed window's final result: stored once under ``kv_key``, then published on ``subject``."""

    kv_key: str
    subject: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class ProvisionalWrite:
    """An open window's current value (``"final": false``) under the key its final will take."""

    kv_key: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class DeadLetterWrite:
    """Something that cannot count, on ``subject``: the ``reason`` before it is made to fit a
    header, and the ``msg_id`` that makes writing it again a no-op."""

    subject: str
    payload: bytes
    reason: str
    msg_id: str


def worker_definition(definition: MetricDefinition) -> MetricDefinition:
    """The definition as a worker runs it: without an ``id_field``, events are told apart by
    their ``event_id`` (every event of the contract has one), so a retry counts once per window.
    :class:`~tables.errors.ConfigError` for a name or version that cannot name a series."""
    metric_series(definition.name, definition.version)
    if definition.id_field is None:
        return dataclasses.replace(definition, id_field="event_id")
    return definition


class MetricDecisions:
    """One metric's decisions, on any partition's windows (see the module docstring).

    ``provisional``: whether open windows' current values are wanted; sessions have none (a
    session's start, hence its key, can move), which :attr:`provisional` then says.
    ``source`` names where the records come from in logs (the events topic).
    """

    def __init__(
        self,
        definition: MetricDefinition,
        *,
        stats: Counter[str] | None = None,
        provisional: bool = False,
        source: str = "events",
    ) -> None:
        self.definition = definition
        #: what keys, subjects and dead letters call this version (its name for version 1)
        self.series = metric_series(definition.name, definition.version)
        self.stats: Counter[str] = Counter() if stats is None else stats
        if provisional and isinstance(definition.window, Session):
            log.info("%s: session windows have no provisional values (a session's start can move)", definition.name)
            provisional = False
        self.provisional = provisional
        self._source = source

    def new_windows(self) -> PartitionWindows:
        """Empty windows for one partition, tracking current values if :attr:`provisional`."""
        return PartitionWindows(self.definition, track_updates=self.provisional)

    # -- events -----------------------------------------------------------------------------

    def read_record(
        self, windows: PartitionWindows, partition: int, offset: int, raw: bytes, stored_at: float
    ) -> Iterator[DeadLetterWrite]:
        """Add the event or batch of events (:mod:`tables.batch`) of one record of the events
        topic to ``windows``, yielding a dead letter for each event that cannot count, in order;
        ``stored_at`` is the record's timestamp, the arrival of events that carry none.

        Lazy: each event is added as the caller gets there, so a caller can write one event's dead
        letter before the next is added. Exhaust it: the record's watermark promise comes last.
        """
        try:
            record = decode_record(raw, stored_at, loads=loads)
        except ValueError as exc:  # not JSON, or not a batch of the right shape
            yield self._reject("invalid", f"{partition}:{offset}", raw, f"not a JSON event: {exc}")
            return
        if not raw.startswith(BATCH_PREFIX):
            event, arrived_at = record.events[0]
            letter = self._add(windows, partition, event, arrived_at, f"{partition}:{offset}", raw)
            if letter is not None:
                yield letter
        else:
            for index, (event, arrived_at) in enumerate(record.events):
                letter = self._add(windows, partition, event, arrived_at, f"{partition}:{offset}.{index}", None)
                if letter is not None:
                    yield letter
        if record.watermark is not None:
            # The writer's promise about every later record: in a backlog the watermark moves
            # as the records are worked off (closing then closes what fell due).
            windows.promise(offset, record.watermark, next_offset=offset + 1)

    def _add(
        self, windows: PartitionWindows, partition: int, event: Any, arrived_at: float, place: str, raw: bytes | None
    ) -> DeadLetterWrite | None:
        """Add one event; ``place`` names it in dead letters (partition:offset[.index in its batch]).

        ``raw`` is the event's own record when it came alone (dead-lettered as it was), else None
        (dead-lettered as its JSON).
        """
        try:
            outcome = windows.add(event, arrived_at)
        except InvalidEventError as exc:
            return self._reject("invalid", place, raw, str(exc), event)
        except Exception as exc:
            log.exception(
                "%s: event %s@%s raised", self.definition.name, self._source, place,
                extra={"metric": self.definition.name, "partition": partition},
            )
            return self._reject("error", place, raw, f"{type(exc).__name__}: {exc}", event)
        if isinstance(outcome, Counted):
            self.stats["counted"] += 1
        elif isinstance(outcome, Late):
            return self._reject("late", place, raw, outcome.reason, event)
        elif isinstance(outcome, Duplicate):
            self.stats["duplicates"] += 1
        else:
            self.stats["ignored"] += 1
        return None

    def _reject(self, kind: str, place: str, raw: bytes | None, reason: str, event: Any = None) -> DeadLetterWrite:
        self.stats[kind] += 1
        metric = self.series
        payload = raw if raw is not None else json.dumps(event, separators=(",", ":")).encode()
        return DeadLetterWrite(f"deadletter.{kind}.{metric}", payload, reason, f"{kind}:{metric}:{place}")

    # -- windows ------------------------------------------------------------------------------

    def closed(self, window: ClosedWindow | FailedWindow, partition: int) -> FinalWrite | DeadLetterWrite | None:
        """What is written about a window ``close_due`` returned: its final result; for a window
        whose result could not be computed, its dead letter (key, window and error); None when
        its key cannot name a KV key (logged, counted ``unwritable``)."""
        if isinstance(window, FailedWindow):
            return self._failed(window, partition)
        self.stats["windows_closed"] += 1
        address = result_address(window, self.series)
        if address is None:
            log.error(
                "%s: key %r cannot name a KV key; result not written", window.metric, window.key,
                extra={"metric": window.metric, "partition": partition, "key": window.key},
            )
            self.stats["unwritable"] += 1
            return None
        kv_key, subject = address
        return FinalWrite(kv_key, subject, strict_json(result_document(window, self.definition.version)))

    def _failed(self, failed: FailedWindow, partition: int) -> DeadLetterWrite:
        self.stats["windows_failed"] += 1
        log.error(
            "%s: window %s [%s, %s) failed and goes to deadletter.error.%s: %s",
            failed.metric, failed.key, rfc3339(failed.start), rfc3339(failed.end), failed.metric, failed.error,
            extra={"metric": failed.metric, "partition": partition, "key": failed.key,
                   "window": f"{rfc3339(failed.start)}/{rfc3339(failed.end)}"},
        )
        key_id = ".".join([self.series, *failed.key.values(), str(int(failed.start))])
        return DeadLetterWrite(
            f"deadletter.error.{self.series}",
            strict_json(failed_document(failed, self.definition.version)),
            failed.error,
            f"window-error:{key_id}",
        )

    def updates(self, windows: PartitionWindows) -> Iterator[ProvisionalWrite]:
        """The current value of every open window of ``windows`` that changed since the last call.

        A window whose key cannot name a KV key, or whose value is not finite, is left out: its
        final result says so when it closes.
        """
        for window in windows.take_updates():
            address = result_address(window, self.series)
            if address is None:
                continue
            try:
                payload = strict_json(result_document(window, self.definition.version))
            except ValueError:
                continue
            yield ProvisionalWrite(address[0], payload)
