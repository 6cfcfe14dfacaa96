"""The metric registry on NATS: the KV bucket where each worker publishes its metric's description.

A worker writes its :class:`~contract.registry.MetricDescription` under the metric's name when it
starts (:func:`publish_description`); the readers (the web process, the results client) keep a
:class:`MetricRegistry`, which reads the whole bucket (a few hundred bytes per metric) and reads
it again when asked about a metric it does not know or when its copy is older than ``max_age``
seconds. So a metric is served the moment its first worker has started, with no restart of any
reader, and a reader never creates a consumer for it (direct gets only).

The bucket keeps one value per key and is bounded by bytes (:data:`REGISTRY_MAX_BYTES`); it has
no TTL, since a description must outlive any quiet spell of its metric: a metric's results stay
readable as long as the metrics bucket keeps them, whether its workers run now or not. A value
that is not a description (a newer, incompatible writer; someone else's key) is logged and left
out, never fatal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from bridges.direct_get import DirectGet, StoredMsg
from bridges.jetstream import ensure_bucket
from bridges.public.streams import PublicStreams
from contract.names import is_id
from contract.registry import REGISTRY_BUCKET, InvalidDescription, MetricDescription
from tables.errors import ClosedError

__all__ = ["MetricRegistry", "REGISTRY_MAX_BYTES", "ensure_registry_bucket", "publish_description"]

log = logging.getLogger(__name__)

#: the registry's bound: about 500 descriptions of 2 KiB, far more metrics than a deployment runs
REGISTRY_MAX_BYTES: Final = 1024 * 1024
_STREAM: Final = f"KV_{REGISTRY_BUCKET}"
_PREFIX: Final = f"$KV.{REGISTRY_BUCKET}."
_DELETED: Final = frozenset({"DEL", "PURGE"})


async def ensure_registry_bucket(js: JetStreamContext, streams: PublicStreams, *, update_limits: bool) -> KeyValue:
    """The registry bucket, created when missing (whoever comes first: a worker or a reader)."""
    return await ensure_bucket(
        js, REGISTRY_BUCKET, history=1, replicas=streams.replicas, max_bytes=REGISTRY_MAX_BYTES,
        update_limits=update_limits,
    )


async def publish_description(js: JetStreamContext, streams: PublicStreams, description: MetricDescription) -> None:
    """Write ``description`` under its metric's name (a worker, at start); the same description
    written again by the next worker changes nothing a reader sees."""
    kv = await ensure_registry_bucket(js, streams, update_limits=True)
    await kv.put(description.name, description.to_json_bytes())


class MetricRegistry:
    """The descriptions of the metrics that run (or ran); an async context manager.

    Args:
        client: a connected nats-py client (not owned).
        streams: the deployment's public names (replicas of the bucket, if a reader creates it).
        max_age: seconds a read of the bucket answers :meth:`all` before it is read again.
        clock: a monotonic clock, seconds.
    """

    def __init__(
        self,
        client: Client,
        *,
        streams: PublicStreams,
        timeout: float = 10.0,
        max_age: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._streams = streams
        self._max_age = max_age
        self._clock = clock
        self._direct = DirectGet(client, _STREAM, timeout=timeout)
        self._known: dict[str, MetricDescription] = {}
        self._read_at: float | None = None
        self._started = False
        self._closed = False

    async def start(self) -> MetricRegistry:
        if self._closed or self._started:
            raise ClosedError("a metric registry can be started once")
        await ensure_registry_bucket(self._client.jetstream(), self._streams, update_limits=False)
        await self._direct.start()
        self._started = True
        return self

    async def close(self) -> None:
        """Idempotent."""
        self._closed = True
        await self._direct.close()

    async def __aenter__(self) -> MetricRegistry:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def known(self) -> dict[str, MetricDescription]:
        """The descriptions as last read, by name (no request)."""
        return dict(self._known)

    async def all(self) -> dict[str, MetricDescription]:
        """Every metric's description, by name, sorted; read again once older than ``max_age``."""
        if self._read_at is None or self._clock() - self._read_at >= self._max_age:
            await self._read()
        return dict(self._known)

    async def get(self, name: str) -> MetricDescription | None:
        """``name``'s description; an unknown name reads the bucket again first (its worker may
        have just started), so a new metric is found on its first request."""
        found = self._known.get(name)
        if found is None and is_id(name):
            await self._read()
            found = self._known.get(name)
        return found

    async def _read(self) -> None:
        if self._closed or not self._started:
            raise ClosedError("the metric registry is not open")
        read_at = self._clock()
        messages = await self._direct.last_per_subject([f"{_PREFIX}*"])
        known = {}
        for msg in messages:
            description = _description(msg)
            if description is not None:
                known[description.name] = description
        self._known = dict(sorted(known.items()))
        self._read_at = read_at


def _description(msg: StoredMsg) -> MetricDescription | None:
    if msg.headers and (msg.headers.get("KV-Operation") in _DELETED or "Nats-Marker-Reason" in msg.headers):
        return None
    name = msg.subject[len(_PREFIX) :]
    try:
        description = MetricDescription.parse(msg.data)
    except InvalidDescription as exc:
        log.warning("registry key %s holds no description this reader can use: %s", name, exc)
        return None
    if description.name != name:
        log.warning("registry key %s holds the description of %s; left out", name, description.name)
        return None
    return description
