"""``windowed_metric``: a metric module's ``build``, one faust agent feeding a windowed runtime."""

from __future__ import annotations

from collections.abc import Callable

import faust

from agents.windowed.context import AgentContext
from agents.windowed.decisions import worker_definition
from agents.windowed.runtime import WindowedRuntime
from contract.names import metric_series
from contract.registry import describe
from tables import MetricDefinition

__all__ = ["MetricBuild", "windowed_metric"]


class MetricBuild:
    """A metric module's ``build(app, context)``, which also says which series the metric's
    version runs as (:meth:`series`): its app and consumer group are named after it, so each
    version of a metric is a group of its own, reading the events from the start of their
    retention when it first starts (docs/operations.md, fixing a metric)."""

    def __init__(self, define: Callable[[int, int], MetricDefinition]) -> None:
        self._define = define

    def series(self, window_seconds: int, grace_seconds: int) -> str:
        """The series of the version the module defines (its name for version 1)."""
        definition = self._define(window_seconds, grace_seconds)
        return metric_series(definition.name, definition.version)

    def __call__(self, app: faust.App, context: AgentContext) -> None:
        definition = worker_definition(self._define(context.window_seconds, context.grace_seconds))
        if context.describe is not None:
            context.describe(describe(definition))
        runtime = WindowedRuntime(app, definition, context)

        @app.agent(context.events, name=definition.name)
        async def process(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                message = event.message
                # The transport gives a message the time JetStream stored it (or one it carries):
                # the arrival of events whose batch does not say otherwise.
                await runtime.add(message.partition, message.offset, event.value, message.timestamp)


def windowed_metric(define: Callable[[int, int], MetricDefinition]) -> MetricBuild:
    """``build`` for a metric module; ``define(window_seconds, grace_seconds)``."""
    return MetricBuild(define)
