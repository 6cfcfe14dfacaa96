"""``python -m app simulate``: a classroom of students playing games, sent to any deployment.

Students of different skill and engagement (:mod:`app.simulator.behaviour`) play several games,
answer questions, open hints and send heartbeats, at a configurable event rate shared out by
engagement. Events carry real-time ``occurred_at`` and go through HTTP ingest (the default) or
the NATS ingest subjects; optional duplicates, late and invalid events make ingest's dedupe and
the dead-letter paths visible (:mod:`app.simulator.events`).

Pacing: every tick (a quarter second) the events owed at the rate are built and sent as one
batch; sending is awaited, so a slow ingest slows the simulator instead of queueing without
bound, and after a stall it does not burst to catch up (at most one second's worth is owed).
A batch ingest could not take is sent again, with backoff, until it is taken or the run stops.

A report line (text, or JSON for the demo's supervisor) is printed every ``report_every``
seconds and once more at the end. SIGINT or SIGTERM stops after the batch in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from app.logs import say
from app.signals import until_signalled
from app.simulator.behaviour import class_profiles
from app.simulator.classroom import Batch, Classroom, Faults
from app.simulator.events import EventFactory
from app.simulator.senders import Delivery, HttpSender, IngestUnavailable, NatsSender, Sender
from bridges.connection import ConnectionSettings, Secret

__all__ = ["INGEST_MODES", "SimulatorOptions", "Totals", "run_simulator", "simulate"]

log = logging.getLogger(__name__)

Ingest = Literal["http", "nats", "both"]
#: http: everything over HTTP; nats: everything over NATS; both: valid events over HTTP, the
#: repeats and invalid events over NATS (repeats then cross paths, and NATS dead-letters invalid
#: events where HTTP would only answer 422)
INGEST_MODES: Final[tuple[Ingest, ...]] = ("http", "nats", "both")

_TICK: Final = 0.25
_BACKOFF_CAP: Final = 5.0


@dataclass(frozen=True)
class SimulatorOptions:
    """One run; ``url`` is HTTP ingest's base URL, ``nats`` how to reach NATS ingest."""

    url: str
    nats: ConnectionSettings
    token: Secret | None = None
    ingest: Ingest = "http"
    students: int = 12
    rate: float = 10.0
    faults: Faults = Faults()
    duration: float | None = None
    seed: int | None = None
    report_every: float = 5.0
    report_json: bool = False

    def __post_init__(self) -> None:
        if self.ingest not in INGEST_MODES:
            raise ValueError(f"ingest must be one of {', '.join(INGEST_MODES)}, got {self.ingest!r}")
        if self.students < 1:
            raise ValueError(f"students must be >= 1, got {self.students}")
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0 events per second, got {self.rate}")
        if self.report_every <= 0:
            raise ValueError(f"report_every must be > 0 seconds, got {self.report_every}")


@dataclass
class Totals:
    """What a run sent and what ingest answered, so far."""

    #: valid events sent once (late ones included)
    sent: int = 0
    late: int = 0
    #: events sent a second time
    repeats: int = 0
    invalid: int = 0
    #: ingest's answers
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    #: sends that failed and were tried again
    retries: int = 0
    #: events of every kind sent per second since the previous report
    rate: float = 0.0
    elapsed: float = 0.0
    _counted: int = field(default=0, repr=False)
    _counted_at: float = field(default=0.0, repr=False)

    @property
    def messages(self) -> int:
        return self.sent + self.repeats + self.invalid

    def take(self, delivery: Delivery) -> None:
        self.accepted += delivery.accepted
        self.duplicates += delivery.duplicates
        self.refused += delivery.refused

    def mark(self, elapsed: float) -> None:
        """Close a reporting interval: ``rate`` becomes the interval's."""
        span = elapsed - self._counted_at
        self.rate = (self.messages - self._counted) / span if span > 0 else 0.0
        self.elapsed = elapsed
        self._counted, self._counted_at = self.messages, elapsed

    def as_json(self) -> str:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}
        fields["rate"] = round(self.rate, 2)
        fields["elapsed"] = round(self.elapsed, 2)
        return json.dumps({"simulator": fields}, separators=(",", ":"))

    def as_text(self) -> str:
        return (
            f"simulate: {self.messages} events sent ({self.rate:.1f}/s): {self.repeats} repeated, "
            f"{self.late} late, {self.invalid} invalid; ingest stored {self.accepted}, "
            f"{self.duplicates} duplicates, {self.refused} refused; {self.retries} retries"
        )


class _Run:
    def __init__(
        self, options: SimulatorOptions, main: Sender, extras: Sender, stop: asyncio.Event,
        print_line: Callable[[str], None],
    ) -> None:
        self._options = options
        self._main = main
        self._extras = extras
        self._stop = stop
        self._print = print_line
        self.totals = Totals()

    async def _deliver(self, sender: Sender, events: Sequence[dict[str, Any]]) -> bool:
        """Send until ingest takes the batch; False if the run stopped first."""
        delay = 0.25
        while True:
            try:
                self.totals.take(await sender.send(events))
                return True
            except IngestUnavailable as exc:
                self.totals.retries += 1
                wait = exc.retry_after if exc.retry_after is not None else delay
                if self.totals.retries == 1 or self.totals.retries % 20 == 0:
                    log.warning("%s ingest unavailable (%s); trying again in %.1fs", sender.name, exc, wait)
                if await self._stopped_within(wait):
                    return False
                delay = min(delay * 2, _BACKOFF_CAP)

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _send(self, batch: Batch) -> bool:
        if batch.events and not await self._deliver(self._main, batch.events):
            return False
        self.totals.sent += len(batch.events)
        self.totals.late += batch.late
        if batch.repeats and not await self._deliver(self._extras, batch.repeats):
            return False
        self.totals.repeats += len(batch.repeats)
        # Over HTTP an invalid event would take its whole batch down with it (422, nothing
        # stored), so each goes alone.
        groups = [[e] for e in batch.invalid] if isinstance(self._extras, HttpSender) else [batch.invalid]
        for group in groups:
            if group and not await self._deliver(self._extras, group):
                return False
            self.totals.invalid += len(group)
        return True

    async def run(self, classroom: Classroom) -> Totals:
        options = self._options
        clock = time.monotonic
        started = last = next_tick = clock()
        next_report = started + options.report_every
        owed = 0.0
        while not self._stop.is_set():
            now = clock()
            owed = min(owed + (now - last) * options.rate, max(1.0, options.rate))
            last = now
            turns = int(owed)
            owed -= turns
            if turns and not await self._send(classroom.tick(turns)):
                break
            now = clock()
            if now >= next_report:
                self._report(now - started)
                while next_report <= now:
                    next_report += options.report_every
            next_tick = max(next_tick + _TICK, now)
            await self._stopped_within(next_tick - now)
        self._report(clock() - started)
        return self.totals

    def _report(self, elapsed: float) -> None:
        self.totals.mark(elapsed)
        self._print(self.totals.as_json() if self._options.report_json else self.totals.as_text())


async def simulate(
    options: SimulatorOptions,
    stop: asyncio.Event,
    *,
    print_line: Callable[[str], None] | None = None,
) -> Totals:
    """Run until ``stop`` is set or ``options.duration`` has passed; the totals at the end."""
    print_line = print_line or _print_line
    rng = random.Random(options.seed)
    run_id = f"{int(time.time()):x}{secrets.token_hex(3)}"
    profiles = class_profiles(options.students, rng)
    classroom = Classroom(profiles, EventFactory(run_id, time.time, rng), rng, time.monotonic, options.faults)
    senders: list[Sender] = []
    deadline: asyncio.TimerHandle | None = None
    try:
        http = HttpSender(options.url, token=options.token) if options.ingest != "nats" else None
        if http is not None:
            senders.append(http)
        nats = await NatsSender.connect(options.nats) if options.ingest != "http" else None
        if nats is not None:
            senders.append(nats)
        # HTTP when it is used, else NATS; the extras NATS when it is used, else HTTP (INGEST_MODES).
        main, extras = senders[0], senders[-1]
        targets = [f"HTTP {http.endpoint}"] if http is not None else []
        targets += [f"NATS {', '.join(options.nats.servers)}"] if nats is not None else []
        names = ", ".join(p.student_id for p in profiles[:6]) + (", ..." if options.students > 6 else "")
        print_line(
            f"simulate: {options.students} students ({names}), {options.rate:g} events/s "
            f"to {' and '.join(targets)}"
        )
        if options.duration is not None:
            # A deadline, not a check between batches: a run waiting for ingest to come back ends too.
            deadline = asyncio.get_running_loop().call_later(options.duration, stop.set)
        return await _Run(options, main, extras, stop, print_line).run(classroom)
    finally:
        if deadline is not None:
            deadline.cancel()
        for sender in senders:
            await sender.close()


def _print_line(line: str) -> None:
    """A report already in JSON (``--json``) as it is; any other line as LOG_FORMAT says."""
    if line.startswith("{"):
        print(line, flush=True)
    else:
        say(line, logger=__name__)


async def run_simulator(options: SimulatorOptions) -> int:
    """``python -m app simulate``: until SIGINT, SIGTERM or the duration; exit code 0."""
    stop = asyncio.Event()
    signalled = asyncio.ensure_future(until_signalled())
    signalled.add_done_callback(lambda _: stop.set())
    try:
        await simulate(options, stop)
    finally:
        signalled.cancel()
    return 0
