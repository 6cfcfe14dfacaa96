"""A windowed runtime in one process, for the runtime's unit tests: a real faust app (memory
broker, never started) hosting the engagement metric (or another definition), with partition 0
active and a scripted arrival clock."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping

import faust
from prometheus_client import CollectorRegistry

from agents import engagement
from agents.windowed import AgentContext, ResultWriter, WindowedRuntime
from tables import ChangelogReplica, MetricDefinition, Promise, Restored
from tables.compaction import ChangelogPurger
from tables.errors import BrokenError

WINDOW, GRACE = 60, 10


class ScriptedClock:
    """Promises what the test says; ``failing`` makes every read raise, as NATS away would."""

    def __init__(self) -> None:
        self.promises: dict[int, Promise] = {}
        self.failing = False
        self.reads = 0

    async def read(self, topic: str, partitions: Collection[int]) -> Mapping[int, Promise]:
        self.reads += 1
        if self.failing:
            raise BrokenError("NATS is not connected")
        return {p: self.promises[p] for p in partitions if p in self.promises}


def windowed_runtime(
    results: ResultWriter,
    *,
    clock: ScriptedClock | None = None,
    restored: Restored | None = None,
    update_seconds: float = 0.0,
    definition: MetricDefinition | None = None,
    registry: CollectorRegistry | None = None,
    purger: ChangelogPurger | None = None,
) -> WindowedRuntime:
    """The runtime, its partition 0 resumed from ``restored`` (from scratch when None)."""
    app = faust.App(f"windowed-{time.monotonic_ns()}", broker="memory://")
    context = AgentContext(
        events=app.topic("events", value_type=bytes),
        window_seconds=WINDOW,
        grace_seconds=GRACE,
        results=results,
        register_state=lambda owner: None,
        clock=clock or ScriptedClock(),
        update_seconds=update_seconds,
        registry=registry,
        purger=purger,
    )
    runtime = WindowedRuntime(app, definition or engagement.define(WINDOW, GRACE), context)
    runtime.activate(0, ChangelogReplica().restore() if restored is None else restored)
    app.flow_control.resume()  # as a started worker's is between rebalances
    return runtime
