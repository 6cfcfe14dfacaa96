"""echo: prints every event it reads — the smallest agent, run by the start-up demo."""

from __future__ import annotations

import faust

from agents.context import AgentContext


def build(app: faust.App, context: AgentContext) -> None:
    @app.agent(context.events, name="echo")
    async def echo(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            print(
                f"echo: {message.topic}[{message.partition}]@{message.offset} "
                f"key={message.key!r} value={event.value.decode(errors='replace')}",
                flush=True,
            )
