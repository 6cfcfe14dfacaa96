"""Running the metric workers and reading their results, for end-to-end tests."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NoKeysError

from bridges.public.event_sink import EventSink
from contract.events import validate_event
from contract.names import METRICS_BUCKET
from testkit.workers import WorkerProcess, Workers

__all__ = [
    "METRIC_AGENTS",
    "bucket_values",
    "dead_letters",
    "ingest",
    "metric_env",
    "metrics_values",
    "result_messages",
    "start_metric_worker",
    "stream_messages",
    "values_match",
]

METRIC_AGENTS = ("progression", "engagement", "outcomes")


def metric_env(nats_url: str, data_dir: Path, *, window: int, grace: int, partitions: int) -> dict[str, str]:
    """Settings for metric workers and the web process in a test: small windows, a short lease."""
    return {
        "NATS_URL": nats_url,
        "PORT": "0",
        "METRICS_WINDOW_SECONDS": str(window),
        "METRICS_GRACE_SECONDS": str(grace),
        "PARTITIONS": str(partitions),
        "SESSION_TIMEOUT": "3",
        "DATA_DIR": str(data_dir),
    }


def start_metric_worker(pool: Workers, agent: str, *, name: str | None = None, **env: str) -> WorkerProcess:
    """``python -m app worker <agent>`` (a name, or a module's path), as the Procfile runs it, with
    its ``/metrics`` and ``/readyz`` on a port of its own (:meth:`WorkerProcess.wait_ready`)."""
    argv = [sys.executable, "-m", "app", "worker", agent]
    return pool.spawn(argv, name=name or agent, **{"METRICS_PORT": "0", **env})


async def ingest(
    url: str,
    events: list[dict[str, Any]],
    *,
    partitions: int,
    now: float,
    arrivals: Sequence[float] | None = None,
) -> None:
    """Through the real ingest path: validated, deduplicated, partitioned by student.

    ``arrivals``: when each event was first stored, for a backlog stored before the workers
    start (as NATS ingest passes them on); None: they arrive now, as HTTP events do. Arrivals in
    the past are only honest while no worker has read the partitions since: a running worker has
    been promised that nothing older is still to come (see bridges/public/arrival_clock.py).
    """
    client = await nats.connect(url)
    try:
        async with EventSink(client, partitions=partitions) as sink:
            for start in range(0, len(events), 500):
                chunk = slice(start, start + 500)
                await sink.publish(
                    [validate_event(e, now=now) for e in events[chunk]],
                    arrivals=None if arrivals is None else arrivals[chunk],
                )
    finally:
        await client.close()


async def metrics_values(url: str, **connect_options: Any) -> dict[str, dict[str, Any]]:
    """Every value of the ``metrics`` KV bucket, over a connection of its own (``connect_options``
    go to ``nats.connect``: credentials, an inbox prefix)."""
    client = await nats.connect(url, **connect_options)
    try:
        return await bucket_values(client)
    finally:
        await client.close()


async def bucket_values(client: Client) -> dict[str, dict[str, Any]]:
    """Every value of the ``metrics`` KV bucket, read through ``client``."""
    try:
        kv = await client.jetstream().key_value(METRICS_BUCKET)
        keys = await kv.keys()
    except (BucketNotFoundError, NoKeysError):
        return {}
    out = {}
    for key in keys:
        try:
            out[key] = json.loads((await kv.get(key)).value or b"null")
        except KeyNotFoundError:
            continue
    return out


def values_match(actual: Any, expected: Any) -> bool:
    """Equal, with floats compared to 1e-9 relative (sums of floats are order-dependent)."""
    if isinstance(expected, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        return abs(actual - expected) <= 1e-9 * max(1.0, abs(expected))
    if isinstance(expected, dict):
        return isinstance(actual, dict) and actual.keys() == expected.keys() and all(
            values_match(actual[k], expected[k]) for k in expected
        )
    return actual == expected and type(actual) is type(expected)


async def dead_letters(url: str, prefix: str = "faust") -> list[tuple[str, dict[str, str], bytes]]:
    """Every message in the dead-letter stream: (subject, headers, payload)."""
    return await stream_messages(url, f"{prefix.upper()}_DEADLETTER")


async def result_messages(url: str, prefix: str = "faust") -> list[tuple[str, dict[str, str], bytes]]:
    """Every message in the results stream (``results.>``): (subject, headers, payload)."""
    return await stream_messages(url, f"{prefix.upper()}_RESULTS")


async def stream_messages(url: str, stream: str) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message in ``stream``, oldest first: (subject, headers, payload); none if no such stream."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        try:
            info = await js.stream_info(stream)
        except Exception:  # noqa: BLE001 - no stream yet: nothing published
            return []
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except Exception:  # noqa: BLE001, S112 - a deleted sequence: nothing to read
                continue
            out.append((msg.subject or "", dict(msg.headers or {}), msg.data or b""))
        return out
    finally:
        await client.close()
