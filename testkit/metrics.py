"""Writing results into the ``metrics`` bucket and on result subjects, as the workers will.

The workers that write them are built elsewhere; these tests put the oracle's values
(:func:`testkit.oracle.expected_results`) there directly, so the readers are checked against what
the contract says the workers write. A worker describes its metric in the registry when it
starts, so these describe the built-in metrics too (:func:`describe_builtins`), as workers with
windows of ``window_seconds`` would.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from nats.aio.client import Client

from agents import metric_modules
from bridges.public.metric_registry import ensure_registry_bucket, publish_description
from bridges.public.streams import PublicStreams
from bridges.transport.publisher import PipelinedPublisher
from contract.names import METRICS_BUCKET, result_subject
from contract.registry import Backfill, describe

__all__ = ["describe_builtins", "publish_results", "put_many", "put_results"]


#: when the stand-in workers started and completed their backfill (docs/api.md shows them)
BACKFILL_STARTED: Final = datetime(2024, 5, 1, 9, 0, 0, tzinfo=UTC)
BACKFILL_COMPLETED: Final = datetime(2024, 5, 1, 9, 0, 2, tzinfo=UTC)


async def describe_builtins(client: Client, *, window_seconds: int = 60, grace_seconds: int = 10) -> None:
    """Publish each metric module's description and a complete backfill record, as its workers
    do when they start on an empty stream."""
    js = client.jetstream()
    for name in metric_modules():
        module = importlib.import_module(f"agents.{name}")
        description = describe(module.define(window_seconds, grace_seconds))
        await publish_description(js, PublicStreams(), description)
        backfill = Backfill(
            series=description.series, started_at=BACKFILL_STARTED, targets={}, remaining=0,
            complete=True, completed_at=BACKFILL_COMPLETED,
        )
        kv = await ensure_registry_bucket(js, PublicStreams(), update_limits=False)
        await kv.put(backfill.key, backfill.to_json_bytes())


async def put_results(client: Client, results: Mapping[str, Mapping[str, Any]]) -> None:
    """``{KV key: value}`` into the bucket (created as the workers and the web process create it)."""
    await describe_builtins(client)
    kv = await PublicStreams().ensure_metrics_bucket(client.jetstream())
    for key, value in results.items():
        await kv.put(key, json.dumps(value).encode())


async def put_many(client: Client, values: Iterable[tuple[str, bytes]], *, in_flight: int = 4096) -> int:
    """``(KV key, value)`` pairs into the bucket, in order, pipelined: tens of thousands a second,
    for a long history. Returns how many were written."""
    await describe_builtins(client)
    await PublicStreams().ensure_metrics_bucket(client.jetstream())
    written = 0
    async with PipelinedPublisher(client, max_in_flight=in_flight) as publisher:
        acks: list[asyncio.Future[Any]] = []
        for key, value in values:
            acks.append(await publisher.publish(f"$KV.{METRICS_BUCKET}.{key}", value, {}))
            if len(acks) >= in_flight:
                written += len(await asyncio.gather(*acks))
                acks = []
        written += len(await asyncio.gather(*acks))
    return written


async def publish_results(client: Client, results: Mapping[str, Mapping[str, Any]]) -> None:
    """Each value on ``results.<metric>.<student_id>``, stored in the results stream."""
    js = client.jetstream()
    await PublicStreams().ensure_results(js)
    for value in results.values():
        await js.publish(result_subject(value["metric"], value["key"]["student_id"]), json.dumps(value).encode())
