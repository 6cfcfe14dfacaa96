"""``windowed_metric``: a metric module's ``build``, one faust agent feeding a windowed runtime."""

from __future__ import annotations

from collections.abc import Callable

import faust

from agents.windowed.context import AgentContext
from agents.windowed.decisions import worker_definition
from agents.windowed.runtime import WindowedRuntime
from contract.registry import describe
from tables import MetricDefinition

__all__ = ["windowed_metric"]


def windowed_metric(
    define: Callable[[int, int], MetricDefinition],
) -> Callable[[faust.App, AgentContext], None]:
    """``build(app, context)`` for a metric module; ``define(window_seconds, grace_seconds)``."""

    def build(app: faust.App, context: AgentContext) -> None:
        definition = worker_definition(define(context.window_seconds, context.grace_seconds))
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

    return build
