"""Throughput of one faust agent over the nats:// transport vs faust's core with no broker.

Both runs use the same app and the same trivial agent (it counts values), in one process, one
after the other, against one embedded nats-server:

- **core**: N messages are built as faust ``ConsumerMessage`` objects and handed straight to the
  Conductor (``app.topics.on_message``) — faust's own ceiling on this machine;
- **transport**: the same N messages are stored in JetStream first, then the worker reads them
  through the transport (pull, decode, deliver, ack, commit).

Time plays no part: the agent counts values, with no window, watermark or arrival clock, so
the messages' timestamps (the feeding time, or when JetStream stored them) are never read.

    python -m benchmarks.transport_vs_core --messages 100000
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

import faust
from faust.types import TP, ConsumerMessage

from bridges.server import NatsServer
from testkit.producer import faust_producer

PARTITIONS = 4


class Counter:
    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.first = 0.0
        self.done = asyncio.Event()

    def hit(self) -> None:
        if self.count == 0:
            self.first = time.perf_counter()
        self.count += 1
        if self.count >= self.target:
            self.done.set()


def make_app(url: str, counter: Counter, app_id: str) -> tuple[faust.App, faust.TopicT]:
    app = faust.App(
        app_id,
        broker=url,
        store="memory://",
        web_enabled=False,
        topic_partitions=PARTITIONS,
        broker_commit_interval=1.0,
        datadir=tempfile.mkdtemp(),
    )
    topic = app.topic("bench-numbers", value_type=int)  # type: ignore[arg-type]  # faust's codecs take int

    @app.agent(topic)
    async def sink(stream):
        async for _value in stream:
            counter.hit()

    return app, topic


async def wait_ready(app: faust.App) -> None:
    while not (app.consumer.assignment() and not app.rebalancing):
        await asyncio.sleep(0.05)
    await app.tables.recovery.completed.wait()  # type: ignore[attr-defined]  # TableManager's, not in T


async def run_core(url: str, n: int) -> float:
    counter = Counter(n)
    app, _ = make_app(url, counter, "bench-core")
    await app.start()
    try:
        await wait_ready(app)
        on_message = app.topics.on_message
        tps = [TP("bench-numbers", p) for p in range(PARTITIONS)]
        start = time.perf_counter()
        for i in range(n):
            tp = tps[i % PARTITIONS]
            message = ConsumerMessage(
                tp.topic, tp.partition, 1_000_000 + i // PARTITIONS, time.time(), 0, [],
                b"k", b"%d" % i, None, 1, 8, tp, generation_id=app.consumer_generation_id,
            )
            app.consumer.track_message(message)
            await on_message(message)
            if i % 50 == 49:
                await asyncio.sleep(0)  # let the agent drain its queue, as a fetcher would
        await counter.done.wait()
        return n / (time.perf_counter() - start)
    finally:
        await app.stop()


async def run_transport(url: str, n: int) -> float:
    async with faust_producer(url, partitions=PARTITIONS) as send:
        batch = 5000
        for lo in range(0, n, batch):
            await send.many("bench-numbers", [(b"k%d" % (i % 64), b"%d" % i) for i in range(lo, min(n, lo + batch))])
    counter = Counter(n)
    app, _ = make_app(url, counter, "bench-transport")
    await app.start()
    try:
        await counter.done.wait()
        return n / (time.perf_counter() - counter.first)
    finally:
        await app.stop()


async def main(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as store:
        async with NatsServer(Path(store)) as server:
            core = await run_core(server.url, n)
            transport = await run_transport(server.url, n)
    return {"core": core, "transport": transport, "ratio": transport / core}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(main(args.messages))
    print(f"faust core, no broker : {result['core']:>10,.0f} msg/s")
    print(f"nats:// transport     : {result['transport']:>10,.0f} msg/s")
    print(f"ratio transport/core  : {result['ratio']:>10.2f}")
