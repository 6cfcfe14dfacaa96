"""Writing results into the ``metrics`` bucket and on result subjects, as the workers will.

The workers that write them are built elsewhere; these tests put the oracle's values
(:func:`testkit.oracle.expected_results`) there directly, so the readers are checked against what
the contract says the workers write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nats.aio.client import Client

from bridges.public.streams import PublicStreams
from contract.names import result_subject

__all__ = ["publish_results", "put_results"]


async def put_results(client: Client, results: Mapping[str, Mapping[str, Any]]) -> None:
    """``{KV key: value}`` into the bucket (created as the workers and the web process create it)."""
    kv = await PublicStreams().ensure_metrics_bucket(client.jetstream())
    for key, value in results.items():
        await kv.put(key, json.dumps(value).encode())


async def publish_results(client: Client, results: Mapping[str, Mapping[str, Any]]) -> None:
    """Each value on ``results.<metric>.<student_id>``, stored in the results stream."""
    js = client.jetstream()
    await PublicStreams().ensure_results(js)
    for value in results.values():
        await js.publish(result_subject(value["metric"], value["key"]["student_id"]), json.dumps(value).encode())
