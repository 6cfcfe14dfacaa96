"""A windowed runtime in one process, for the runtime's unit tests: a real faust app (memory
broker, never started) hosting the engagement metric, with partition 0 active."""

from __future__ import annotations

import time

import faust

from agents import engagement
from agents.context import AgentContext, ResultWriter
from agents.windowed import WindowedRuntime
from tables import ChangelogReplica, Restored

WINDOW, GRACE = 60, 10


def windowed_runtime(
    results: ResultWriter, *, restored: Restored | None = None, update_seconds: float = 0.0
) -> WindowedRuntime:
    """The runtime, its partition 0 resumed from ``restored`` (from scratch when None)."""
    app = faust.App(f"windowed-{time.monotonic_ns()}", broker="memory://")
    context = AgentContext(
        events=app.topic("events", value_type=bytes),
        window_seconds=WINDOW,
        grace_seconds=GRACE,
        results=results,
        register_state=lambda owner: None,
        update_seconds=update_seconds,
    )
    runtime = WindowedRuntime(app, engagement.define(WINDOW, GRACE), context)
    runtime.activate(0, ChangelogReplica().restore() if restored is None else restored)
    app.flow_control.resume()  # as a started worker's is between rebalances
    return runtime
