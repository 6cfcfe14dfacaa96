"""HTTP ingest throughput vs raw pipelined JetStream publishing of the same events, in one run.

One embedded nats-server; the web process runs as its own process (``python -m app web``), as in
production, so the HTTP server and this client do not share a core's event loop. Four phases,
each with its own event ids (so nothing is a duplicate) and the same number of events:

- **raw**: the events' canonical JSON published into the events topic by this process with the
  project's ``PipelinedPublisher`` (Nats-Msg-Id and key headers as HTTP ingest sets them, and no
  ``Faust-Ts``: an HTTP event's arrival is when the events topic stores it), waiting for every
  ack — the ceiling of what ingest could do;
- **http-100** and **http-1000**: ``POST /v1/events`` with batches of 100 and 1000 events,
  ``--concurrency`` requests in flight; each answer comes after JetStream stored the batch;
- **nats**: the NATS ingest path — each event published (pipelined, acknowledged by the ingest
  stream) on ``events.<type>.<student_id>``, which the web process pulls, validates and writes
  into the events topic; timed until the events topic holds every one.

Printed: events/s, p50/p99 request latency, and each phase as a ratio to raw. The machines
are noisy: compare figures of one run, as ratios.

Time plays no part in the figures: no worker runs. The events are generated sessions of a fixed
day in 2024; ingest accepts an ``occurred_at`` in the past (it would be late for a worker, which
is not what is measured here), and stamps each with its arrival as it does in production (HTTP:
the events topic's stored time; NATS: the ingest stream's, carried in ``Faust-Ts``).

    python -m benchmarks.ingest --events 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bridges.connection import ConnectionSettings, connect
from bridges.naming import Naming
from bridges.public.streams import INGEST_CONSUMER, PublicStreams
from bridges.server import NatsServer
from bridges.transport.envelope import encode_headers
from bridges.transport.publisher import PipelinedPublisher
from bridges.transport.session import partition_for_key
from contract.events import validate_event
from contract.names import ingest_subject
from testkit.oracle import generate_sessions

PARTITIONS = 4
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Phase:
    """One ingest path's figures; latencies only where there are requests."""

    name: str
    rate: float
    p50: float | None = None
    p99: float | None = None


def events_for(phase: str, count: int) -> list[dict[str, Any]]:
    """``count`` realistic events (the oracle's sessions), ids unique to ``phase``."""
    out: list[dict[str, Any]] = []
    seed = 0
    while len(out) < count:
        seed += 1
        for event in generate_sessions(seed=seed, students=200, minutes=30, start_epoch=1_714_557_600):
            out.append({**event, "event_id": f"{phase}-{len(out)}"})
            if len(out) == count:
                break
    return out


@contextmanager
def web_process(nats_url: str, data_dir: Path) -> Iterator[str]:
    env = {**os.environ, "NATS_URL": nats_url, "PORT": "0", "PARTITIONS": str(PARTITIONS),
           "DATA_DIR": str(data_dir), "LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "web"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"web listening on (http://\S+)", line)
        if match is None:
            raise RuntimeError(f"the web process did not start: {line!r}")
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(30)


async def raw_publish(nats_url: str, events: list[dict[str, Any]]) -> float:
    """Seconds to publish the events' canonical JSON pipelined and collect every ack."""
    naming = Naming("faust")
    subjects = [naming.subject("events", p) for p in range(PARTITIONS)]
    payloads = [(e["event_id"], e["student_id"].encode(), validate_event(e, now=time.time()).to_json_bytes()) for e in events]
    client = await connect(ConnectionSettings.from_urls(nats_url))
    try:
        async with PipelinedPublisher(client) as publisher:
            started = time.perf_counter()
            futures = []
            for event_id, key, payload in payloads:
                headers = encode_headers(msg_id=event_id, key=key, value_is_null=False, timestamp=None, headers=None)
                futures.append(await publisher.publish(subjects[partition_for_key(key, PARTITIONS)], payload, headers))
            acks = await asyncio.gather(*futures)
            elapsed = time.perf_counter() - started
        assert not any(ack.duplicate for ack in acks)
    finally:
        await client.drain()
    return elapsed


async def http_ingest(url: str, events: list[dict[str, Any]], batch: int, concurrency: int) -> tuple[float, list[float]]:
    """Seconds for all batches, and each request's latency."""
    bodies = [json.dumps({"events": events[i : i + batch]}).encode() for i in range(0, len(events), batch)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    accepted = 0
    headers = {"Content-Type": "application/json"}

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        while not queue.empty():
            body = queue.get_nowait()
            sent = time.perf_counter()
            async with session.post(f"{url}/v1/events", data=body, headers=headers) as response:
                answer = await response.json()
                if response.status != 202:
                    raise RuntimeError(f"ingest answered {response.status}: {answer}")
            latencies.append(time.perf_counter() - sent)
            accepted += answer["accepted"]

    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        await asyncio.gather(*(sender(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if accepted != len(events):
        raise RuntimeError(f"{accepted} of {len(events)} events accepted")
    return elapsed, latencies


async def nats_ingest(nats_url: str, events: list[dict[str, Any]]) -> float:
    """Seconds from the first publish on ``events.<type>.<id>`` until the topic holds every event.

    NATS ingest acknowledges a message of its stream once the events topic stored its event, so
    the topic holds them all when the ingest consumer's ack floor reaches the last one published.
    """
    client = await connect(ConnectionSettings.from_urls(nats_url))
    try:
        js = client.jetstream()

        async def acked_through() -> int:
            info = await js.consumer_info(PublicStreams().ingest, INGEST_CONSUMER)
            return info.ack_floor.stream_seq if info.ack_floor else 0

        payloads = [(ingest_subject(e["type"], e["student_id"]), json.dumps(e).encode(), e["event_id"]) for e in events]
        async with PipelinedPublisher(client) as publisher:
            started = time.perf_counter()
            futures = [await publisher.publish(subject, payload, {"Nats-Msg-Id": event_id})
                       for subject, payload, event_id in payloads]
            last = max(ack.seq for ack in await asyncio.gather(*futures))
            while await acked_through() < last:
                await asyncio.sleep(0.02)
            return time.perf_counter() - started
    finally:
        await client.drain()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(events_per_phase: int, concurrency: int) -> list[Phase]:
    """Every phase in one run; the first is the raw reference."""
    with tempfile.TemporaryDirectory() as tmp:
        async with NatsServer(Path(tmp) / "nats") as server:
            with web_process(server.url, Path(tmp) / "data") as url:
                # Warm-up: topic creation, connections, first-call costs.
                await http_ingest(url, events_for("warmup", min(2000, events_per_phase)), 100, concurrency)
                raw = await raw_publish(server.url, events_for("raw", events_per_phase))
                phases = [Phase("raw pipelined JetStream", events_per_phase / raw)]
                for batch in (100, 1000):
                    elapsed, latencies = await http_ingest(url, events_for(f"http{batch}", events_per_phase), batch, concurrency)
                    phases.append(
                        Phase(f"HTTP batches of {batch}", events_per_phase / elapsed,
                              percentile(latencies, 0.5), percentile(latencies, 0.99))
                    )
                elapsed = await nats_ingest(server.url, events_for("nats", events_per_phase))
                phases.append(Phase("NATS ingest (events.>)", events_per_phase / elapsed))
    return phases


async def main(events_per_phase: int, concurrency: int) -> None:
    phases = await measure(events_per_phase, concurrency)
    print(f"{events_per_phase} events per phase, {concurrency} requests in flight, {PARTITIONS} partitions")
    print(f"{'path':<26} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'vs raw':>7}")
    for phase in phases:
        latency = (
            f"{phase.p50 * 1000:8.1f} {phase.p99 * 1000:8.1f}"
            if phase.p50 is not None and phase.p99 is not None
            else f"{'-':>8} {'-':>8}"
        )
        print(f"{phase.name:<26} {phase.rate:>10.0f} {latency} {phase.rate / phases[0].rate:>7.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="events per phase")
    parser.add_argument("--concurrency", type=int, default=4, help="HTTP requests in flight")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.concurrency))
