"""``MetricDriver``: a metric run on events in a test, and everything a worker would write.

Like Kafka Streams' ``TopologyTestDriver``: no NATS, no faust app, no clock but the test's. Events
go in as producers send them (raw JSON, each with its arrival), time moves when the test says so,
and what comes out is exactly what the system would store and publish::

    driver = MetricDriver(engagement.define, now=T0)    # define(60, 10), as a worker with the defaults
    driver.send(event_json)                  # arrives now: through ingest's validation into the metric
    driver.send(event, arrived_at=T0 + 3)    # or at a given arrival (epoch seconds)
    driver.advance_to(T0 + 70)               # nothing still to come arrived before T0 + 70
    driver.close_all()                       # the stream moved past every open window
    driver.finals()                          # {KV key: final document}, like testkit.oracle
    driver.kv, driver.published, driver.dead_letters

The same code as a worker decides (:class:`~agents.windowed.decisions.MetricDecisions` over
:class:`~tables.PartitionWindows`): the windows, lateness by arrival, an ``event_id`` counted once
per window, the result documents and their KV keys and subjects, dead letters with their
subject, reason and ``Nats-Msg-Id``. What it adds is only what NATS and the ingest bridge do:

- :meth:`MetricDriver.send` judges the event as NATS ingest does (:mod:`contract.events`, with
  the arrival as ingest's clock: an ``occurred_at`` more than 5 minutes ahead of it is refused).
  A refused event becomes a dead letter on ``deadletter.invalid`` with the ``Reason`` NATS ingest
  gives it (HTTP ingest would answer 422 instead) and reaches no metric. An admitted one is
  written as ingest writes it, in its canonical JSON in a batch record carrying its arrival.
  Ingest's checks of the subject and of the payload's size (64 KiB) are not made: there is
  no subject here.
- :meth:`MetricDriver.send_record` puts a record on the events topic as it is (one event's JSON,
  or a batch of :mod:`tables.batch`, whose own watermark promise counts), unvalidated: what the
  workers read, for events the contract would refuse.
- The watermark moves only with :meth:`~MetricDriver.advance_to` and :meth:`~MetricDriver.close_all`
  (and a batch's promise), as a worker's moves with its readings of the streams; windows close as
  soon as it passes their end + grace. Lateness depends on arrivals only, so when windows close
  changes no result (see :mod:`tables.windowed`). An arrival before the watermark breaks its
  promise; the event is judged as a worker would judge it (late, saying the watermark had passed).
- One partition: the ``Nats-Msg-Id`` of a dead letter names the event's place as partition 0 and
  the record's offset, counted from 1 like a stream's sequence. Dead letters of ``deadletter.invalid``
  have none here (in a deployment: the ingest stream's sequence).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from agents.windowed.decisions import DeadLetterWrite, FinalWrite, MetricDecisions, worker_definition
from contract.deadletters import header_text, refusal_reason
from contract.events import InvalidEvents, MalformedJSON, validate_event
from contract.names import DEADLETTER_INVALID, result_msg_id
from tables import MetricDefinition
from tables.batch import encode_batch
from tables.errors import ConfigError

__all__ = ["DeadLetter", "MetricDriver", "Published"]

#: the partition every record goes to
_PARTITION: Final = 0
#: what ``define`` receives unless told otherwise: the defaults of METRICS_WINDOW_SECONDS and
#: METRICS_GRACE_SECONDS
_WINDOW_SECONDS: Final = 60
_GRACE_SECONDS: Final = 10


@dataclass(frozen=True, slots=True)
class Published:
    """A final result as published on its result subject."""

    subject: str
    payload: bytes
    #: the ``Nats-Msg-Id`` header: ``result:<kv key>``
    msg_id: str

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead letter as published: its subject, payload and headers."""

    subject: str
    payload: bytes
    #: the ``Reason`` header, as stored (one line of ASCII, at most 1000 characters)
    reason: str
    #: the ``Nats-Msg-Id`` header; None on ``deadletter.invalid`` (see the module docstring)
    msg_id: str | None

    def json(self) -> Any:
        """The payload's JSON; ``ValueError`` for a payload that is not JSON (a refused event)."""
        return json.loads(self.payload)


class MetricDriver:
    """One metric run on the events a test sends (see the module docstring).

    ``metric``: a metric module's ``define`` (called with ``window_seconds`` and
    ``grace_seconds``, 60 and 10 unless given) or a :class:`~tables.MetricDefinition`; without an
    ``id_field`` it counts an ``event_id`` once per window, as a worker does. ``now``: the test's
    clock, in epoch seconds: the arrival of events sent without one. ``provisional``: keep what
    :meth:`write_updates` writes, as a worker with ``METRICS_UPDATE_SECONDS`` does.
    """

    def __init__(
        self,
        metric: Callable[[int, int], MetricDefinition] | MetricDefinition,
        *,
        now: float,
        window_seconds: int = _WINDOW_SECONDS,
        grace_seconds: int = _GRACE_SECONDS,
        provisional: bool = False,
    ) -> None:
        definition = metric if isinstance(metric, MetricDefinition) else metric(window_seconds, grace_seconds)
        self._decisions = MetricDecisions(worker_definition(definition), provisional=provisional)
        self._provisional = provisional
        self._windows = self._decisions.new_windows()
        self._now = _moment("now", now)
        #: offset of the last record (0: none yet; the first is 1)
        self._offset = 0
        self._kv: dict[str, bytes] = {}
        self._finals: set[str] = set()
        self._kv_writes: list[tuple[str, bytes]] = []
        self._published: list[Published] = []
        self._dead_letters: list[DeadLetter] = []

    @property
    def definition(self) -> MetricDefinition:
        """The definition as it runs (with the ``id_field`` a worker gives it)."""
        return self._decisions.definition

    @property
    def now(self) -> float:
        """The test's clock: the arrival of events sent without one."""
        return self._now

    @property
    def watermark(self) -> float | None:
        """Every record still to come arrived at or after this; None before anything was promised."""
        return self._windows.watermark()

    # -- in -----------------------------------------------------------------------------------

    def send(self, event: bytes | str | Mapping[str, Any], *, arrived_at: float | None = None) -> None:
        """An event as a producer sends it (its JSON, or a dict to encode), first stored by the
        platform at ``arrived_at`` (default :attr:`now`): judged as NATS ingest judges it, then
        read by the metric. A refused event goes to ``deadletter.invalid`` with the reason."""
        arrival = self._now if arrived_at is None else _moment("arrived_at", arrived_at)
        raw = event if isinstance(event, bytes | str) else json.dumps(dict(event))
        payload = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
        try:
            admitted = validate_event(raw, now=arrival)
        except (MalformedJSON, InvalidEvents) as exc:
            self._dead_letters.append(DeadLetter(DEADLETTER_INVALID, payload, header_text(refusal_reason(exc)), None))
            return
        self.send_record(encode_batch([admitted.to_json_bytes()], [arrival]), stored_at=arrival)

    def send_record(self, record: bytes, *, stored_at: float | None = None) -> None:
        """A record of the events topic as it is, unvalidated: one event's JSON, or a batch
        (:func:`tables.batch.encode_batch`); ``stored_at`` (default :attr:`now`) is the arrival of
        its events that carry none. A batch's watermark promise counts, as in a worker."""
        stored = self._now if stored_at is None else _moment("stored_at", stored_at)
        self._offset += 1
        for letter in self._decisions.read_record(self._windows, _PARTITION, self._offset, record, stored):
            self._dead_letter(letter)
        self._close_due()

    # -- time ---------------------------------------------------------------------------------

    def advance_to(self, moment: float) -> None:
        """Move the clock to ``moment`` and promise that nothing still to come arrived before it;
        every window whose end + grace it reaches closes. The clock never goes back."""
        moment = _moment("moment", moment)
        if moment < self._now:
            raise ConfigError("moment", moment, f"is before the clock ({self._now}), which never goes back", kind="Argument")
        self._now = moment
        # A reading of the stream: every record after the last one arrived at or after ``moment``.
        self._windows.promise(self._offset, moment, next_offset=self._offset + 1)
        self._close_due()

    def close_all(self) -> None:
        """Advance the clock window by window until every open window has closed: to the latest
        end + grace among them, or not at all when none is open (or none is due later)."""
        while (due := self._windows.next_due()) is not None:
            self.advance_to(max(due, self._now))

    def write_updates(self) -> None:
        """Write the current value of each open window that changed since the last call,
        ``"final": false``, under the key its final will take: what a worker's updater does
        every ``METRICS_UPDATE_SECONDS``. Sessions have none (their start can move)."""
        if not self._provisional:
            raise ConfigError("provisional", False, "write_updates needs MetricDriver(..., provisional=True)", kind="Argument")
        for update in self._decisions.updates(self._windows):
            if update.kv_key not in self._finals:  # never over a final value
                self._kv[update.kv_key] = update.payload
                self._kv_writes.append((update.kv_key, update.payload))

    def _close_due(self) -> None:
        self._windows.processed(self._offset + 1)
        for closed in self._windows.close_due():
            write = self._decisions.closed(closed, _PARTITION)
            if isinstance(write, FinalWrite):
                self._kv[write.kv_key] = write.payload
                self._finals.add(write.kv_key)
                self._kv_writes.append((write.kv_key, write.payload))
                self._published.append(Published(write.subject, write.payload, result_msg_id(write.kv_key)))
            elif write is not None:
                self._dead_letter(write)

    def _dead_letter(self, letter: DeadLetterWrite) -> None:
        self._dead_letters.append(DeadLetter(letter.subject, letter.payload, header_text(letter.reason), letter.msg_id))

    # -- out ----------------------------------------------------------------------------------

    @property
    def kv(self) -> dict[str, bytes]:
        """The ``metrics`` bucket as it stands: KV key -> the bytes stored (a provisional value
        until its final replaces it)."""
        return dict(self._kv)

    @property
    def kv_writes(self) -> list[tuple[str, bytes]]:
        """Every write to the bucket in order: (KV key, bytes); a final is written once."""
        return list(self._kv_writes)

    def finals(self) -> dict[str, Any]:
        """KV key -> final document (decoded), the form of ``testkit.oracle.expected_results``."""
        return {key: json.loads(self._kv[key]) for key in self._kv if key in self._finals}

    @property
    def published(self) -> list[Published]:
        """The final results published on ``results.<metric>.<id>``, in order."""
        return list(self._published)

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, in order: refused by ingest, invalid for the metric, late, error."""
        return list(self._dead_letters)

    @property
    def stats(self) -> Counter[str]:
        """A worker's counts (``counted``, ``duplicates``, ``ignored``, ``late``, ``invalid``,
        ``error``, ``windows_closed``, ``windows_failed``, ``unwritable``); refusals by ingest
        are not among them."""
        return Counter(self._decisions.stats)


def _moment(argument: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(argument, value, "must be a finite number of epoch seconds", kind="Argument")
    return float(value)
