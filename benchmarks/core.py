"""faust's core with the three learning agents, messages handed straight to it: no broker input.

One faust app in this process holds the progression, engagement and outcomes agents, built by
their own modules exactly as a worker builds them (same definitions, same windowed runtime, same
result writer). The dataset's events are turned into faust ``ConsumerMessage`` objects and given
to the Conductor (``app.topics.on_message``), which fans each one out to the three agents — what
faust's fetcher would do after reading them from a broker. Output is real: changelog flushes at
each commit, results to KV. So this is the pipeline minus the transport's input side and minus
process boundaries, one core.

Time. Each message's timestamp is the event's arrival from the dataset (when the backlog was
stored; see :mod:`benchmarks.dataset`), exactly what a worker reads from ``Faust-Ts``. With no
broker, the arrival clock that closes windows is a :class:`~benchmarks.fed_clock.FedClock`: it
promises, per partition, what has been fed (the last offset and its arrival), read by the
agents' closers every 0.25 s like the streams are in a worker, and after the last message a time
past every window. So windows close as the backlog is worked off, as they did with the event-time
watermark this stage measured before, and the last ones right after the last message.

The **plain-dict** variant (issue 4) runs the same three metric definitions in agents that keep
their windows in a dict — decode, filter, key, event time, window ranges and the same
``Aggregates`` — with no windowed table: no watermark, no changelog, no closing, no results.
Its rate against the windowed one is the table layer's overhead.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
from faust.types import TP, ConsumerMessage
from nats.aio.client import Client

from agents.windowed import AgentContext
from app.worker.factory import load_agent, transport_consumer
from benchmarks.dataset import EVENTS_TOPIC, Dataset, Message, ResultWatch
from benchmarks.fed_clock import FedClock
from bridges.public.streams import PublicStreams
from bridges.public.window_results import WindowResults
from bridges.transport.purging import ChangelogPurges
from tables import MetricDefinition
from tables.micros import from_micros
from testkit.pipeline import METRIC_AGENTS

__all__ = ["run_core"]

#: messages handed to the Conductor between yields to the loop, as the transport's fetcher does
_YIELD_EVERY = 50


async def run_core(
    url: str, client: Client, dataset: Dataset, *, data_dir: Path, plain: bool = False, timeout: float = 300.0
) -> float:
    """Seconds from the first message handed to faust until the last result is in KV.

    ``client`` watches the results. With ``plain``: until the three plain-dict agents have
    processed every message.
    """
    name = "bench-core-plain" if plain else "bench-core"
    app = faust.App(
        name,
        broker=url,
        store="tracked-memory://",
        topic_partitions=dataset.partitions,
        web_enabled=False,
        canonical_url=f"http://{name}-{os.getpid()}.invalid:6066",
        broker_commit_interval=1.0,
        datadir=str(data_dir / name),
    )
    topic = app.topic(EVENTS_TOPIC, value_serializer="raw", key_serializer="raw")
    processed = _Countdown(len(METRIC_AGENTS) * dataset.size)
    clock = FedClock(EVENTS_TOPIC)
    for agent in METRIC_AGENTS:
        if plain:
            _plain_agent(app, topic, load_agent(agent).define(dataset.window, dataset.grace), processed.hit)
        else:
            load_agent(agent).build(app, _context(app, topic, dataset, clock))
    messages = dataset.messages()
    async with ResultWatch(client) as watch:
        await app.start()
        try:
            await _ready(app)
            started = time.perf_counter()
            await _feed(app, messages, clock)
            # Nothing more is coming: every window may close once what was fed is processed.
            clock.end(dataset.last_arrival() + dataset.window + dataset.grace)
            if plain:
                async with asyncio.timeout(timeout):
                    await processed.done.wait()
            else:
                await watch.wait_for(dataset.expected.keys(), timeout=timeout)
            return time.perf_counter() - started
        finally:
            await app.stop()


def _context(app: faust.App, topic: faust.TopicT, dataset: Dataset, clock: FedClock) -> AgentContext:
    transport: Any = app.transport
    return AgentContext(
        events=topic,
        window_seconds=dataset.window,
        grace_seconds=dataset.grace,
        results=WindowResults(transport.session, PublicStreams()),
        register_state=transport_consumer(app).register_state_owner,
        clock=clock,
        purger=ChangelogPurges(transport.session),
    )


async def _ready(app: faust.App) -> None:
    while not (app.consumer.assignment() and not app.rebalancing):
        await asyncio.sleep(0.05)
    await app.tables.recovery.completed.wait()  # type: ignore[attr-defined]  # faust's TableManager has it


async def _feed(app: faust.App, messages: list[Message], clock: FedClock) -> None:
    """Hand each message to the Conductor with its arrival as timestamp, telling ``clock``."""
    on_message = app.topics.on_message
    consumer = app.consumer
    offsets: dict[int, int] = {}
    generation = app.consumer_generation_id
    for i, message in enumerate(messages):
        assert message.arrived_at is not None  # the dataset's backlog carries its arrivals
        offset = offsets[message.partition] = offsets.get(message.partition, 0) + 1
        tp = TP(EVENTS_TOPIC, message.partition)
        consumer_message = ConsumerMessage(
            EVENTS_TOPIC, message.partition, offset, message.arrived_at, 0, [], message.key, message.payload,
            None, len(message.key), len(message.payload), tp, generation_id=generation,
        )
        consumer.track_message(consumer_message)
        clock.fed(message.partition, offset, message.arrived_at)
        await on_message(consumer_message)
        if i % _YIELD_EVERY == _YIELD_EVERY - 1:
            await asyncio.sleep(0)


class _Countdown:
    def __init__(self, target: int) -> None:
        self.left = target
        self.done = asyncio.Event()

    def hit(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.done.set()


def _plain_agent(
    app: faust.App, topic: faust.TopicT, definition: MetricDefinition, processed: Callable[[], None]
) -> None:
    """One metric's aggregates kept in a dict of (key, window start) -> state."""
    where = definition.where
    read_key = definition.read_key
    read_time_us = definition.read_time_us
    ranges_us = definition.window.ranges_us  # type: ignore[union-attr]  # tumbling: never a session
    aggregates = definition.aggregates
    windows: dict[tuple[tuple[str, ...], int], Any] = {}

    @app.agent(topic, name=f"plain-{definition.name}")
    async def process(stream: faust.StreamT[bytes]) -> None:
        async for raw in stream:
            event = json.loads(raw)
            if where is None or where(event):
                key = read_key(event)
                t_us = read_time_us(event)
                for start_us, _ in ranges_us(t_us):
                    state = windows.get((key, start_us))
                    windows[(key, start_us)] = aggregates.agg(
                        aggregates.initialize() if state is None else state, event, from_micros(t_us)
                    )
            processed()
