"""The main job for now: an embedded NATS server, one echo worker, and sample events.

The worker is a real subprocess (``python -m app worker echo``) in its own process group, so a
Ctrl-C reaches only this supervisor, which stops the worker with SIGTERM (it drains and commits)
before stopping the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import faust

from app.cli import until_signalled
from app.factory import EVENTS_TOPIC
from app.settings import Settings
from bridges.server import NatsServer

__all__ = ["run_demo"]


async def run_demo(settings: Settings) -> int:
    async with NatsServer(settings.data_dir / "nats", port=0) as server:
        print(f"NATS with JetStream running at {server.url} (store {settings.data_dir / 'nats'})", flush=True)
        env = {**os.environ, "NATS_URL": server.url}
        worker = subprocess.Popen(
            [sys.executable, "-m", "app", "worker", "echo"], env=env, start_new_session=True
        )
        print(f"echo worker started (pid {worker.pid}); sending a sample event every second; Ctrl-C stops", flush=True)
        try:
            async with _producer(settings, server.url) as app:
                stopping = asyncio.create_task(until_signalled())
                sequence = 0
                while not stopping.done():
                    await _send_sample(app, sequence)
                    sequence += 1
                    await asyncio.wait({stopping}, timeout=1.0)
        finally:
            await _stop(worker)
        print("stopped", flush=True)
    return 0


@contextlib.asynccontextmanager
async def _producer(settings: Settings, url: str) -> AsyncIterator[faust.App]:
    app = faust.App(
        "demo-producer",
        broker=settings.broker_url((url,)),
        broker_credentials=settings.credentials(),
        topic_partitions=settings.partitions,
        web_enabled=False,
    )
    await app.producer.start()
    try:
        yield app
    finally:
        await app.producer.stop()


async def _send_sample(app: faust.App, sequence: int) -> None:
    student = f"student-{sequence % 3}"
    event = {
        "event_id": f"demo-{int(time.time())}-{sequence}",
        "student_id": student,
        "type": "interaction",
        "name": "answer",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {"correct": sequence % 2 == 0},
    }
    await app.producer.send_and_wait(
        EVENTS_TOPIC, student.encode(), json.dumps(event).encode(), None, time.time(), None
    )


async def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(worker.wait), 30)
        except TimeoutError:
            worker.kill()
            await asyncio.to_thread(worker.wait)
