"""The metric registry on NATS: the KV bucket where each worker publishes its metric's description.

A worker writes its :class:`~contract.registry.MetricDescription` under its version's series (the
metric's name for version 1) when it starts (:func:`publish_description`), and the version's
:class:`~contract.registry.Backfill` under ``backfill.<series>``
(:mod:`bridges.public.version_progress`); the readers (the web process, the results client) keep a
:class:`MetricRegistry`, which reads the whole bucket (a few hundred bytes per metric) and reads
it again when asked about a metric it does not know or when its copy is older than ``max_age``
seconds, whichever method asks. So a metric is served the moment its first worker has started, with no restart of any
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
from typing import Final, TypeVar

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from bridges.direct_get import DirectGet, StoredMsg
from bridges.jetstream import ensure_bucket
from bridges.public.streams import PublicStreams
from contract.names import is_id
from contract.registry import (
    BACKFILL_PREFIX,
    REGISTRY_BUCKET,
    Backfill,
    InvalidDescription,
    MetricDescription,
    MetricVersion,
    default_version,
)
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
    """Write ``description`` under its version's series (a worker, at start); the same
    description written again by the next worker changes nothing a reader sees."""
    kv = await ensure_registry_bucket(js, streams, update_limits=True)
    await kv.put(description.series, description.to_json_bytes())


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
        #: every version of every metric, by name, oldest version first
        self._versions: dict[str, list[MetricVersion]] = {}
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
        """Each metric's default version's description as last read, by name (no request)."""
        return _defaults(self._versions)

    async def all(self) -> dict[str, MetricDescription]:
        """Each metric's default version's description (:func:`~contract.registry.default_version`),
        by name, sorted; read again once older than ``max_age``."""
        await self._refresh()
        return _defaults(self._versions)

    async def catalog(self) -> dict[str, list[MetricVersion]]:
        """Every version of every metric, by name, oldest version first; read again once older
        than ``max_age``."""
        await self._refresh()
        return {name: list(versions) for name, versions in self._versions.items()}

    async def get(self, name: str, version: int | None = None) -> MetricDescription | None:
        """The description of ``name``'s ``version`` (None: its default version), read again
        once older than ``max_age`` like :meth:`all`: a known metric's default moves to a new
        version once its backfill completes, and a redeployed version may describe a new value.
        A name or a version not known yet reads the bucket again at once (its worker may have
        just started), so a new metric or version is found on its first request."""
        read = await self._refresh()
        found = _select(self._versions.get(name, []), version)
        if found is None and is_id(name) and not read:
            await self._read()
            found = _select(self._versions.get(name, []), version)
        return found

    async def _refresh(self) -> bool:
        """Read the bucket if the last read is older than ``max_age``; whether it was read."""
        if self._read_at is None or self._clock() - self._read_at >= self._max_age:
            await self._read()
            return True
        return False

    async def _read(self) -> None:
        if self._closed or not self._started:
            raise ClosedError("the metric registry is not open")
        read_at = self._clock()
        messages = await self._direct.last_per_subject([f"{_PREFIX}*", f"{_BACKFILL}*"])
        descriptions: list[MetricDescription] = []
        backfills: dict[str, Backfill] = {}
        for msg in messages:
            if msg.subject.startswith(_BACKFILL):
                if (backfill := _record(msg, Backfill, msg.subject[len(_BACKFILL) :])) is not None:
                    backfills[backfill.series] = backfill
            elif (description := _record(msg, MetricDescription, msg.subject[len(_PREFIX) :])) is not None:
                descriptions.append(description)
        versions: dict[str, list[MetricVersion]] = {}
        for description in sorted(descriptions, key=lambda d: (d.name, d.version)):
            versions.setdefault(description.name, []).append(
                MetricVersion(description=description, backfill=backfills.get(description.series))
            )
        self._versions = versions
        self._read_at = read_at


_BACKFILL: Final = f"{_PREFIX}{BACKFILL_PREFIX}."


def _defaults(versions: dict[str, list[MetricVersion]]) -> dict[str, MetricDescription]:
    return {name: chosen.description for name, found in versions.items() if (chosen := default_version(found))}


def _select(versions: list[MetricVersion], version: int | None) -> MetricDescription | None:
    if version is None:
        chosen = default_version(versions)
        return chosen.description if chosen is not None else None
    return next((v.description for v in versions if v.description.version == version), None)


_Record = TypeVar("_Record", MetricDescription, Backfill)


def _record(msg: StoredMsg, model: type[_Record], series: str) -> _Record | None:
    """The description or backfill record stored under ``series``; None for a deleted key or a
    value this reader cannot use (logged)."""
    if msg.headers and (msg.headers.get("KV-Operation") in _DELETED or "Nats-Marker-Reason" in msg.headers):
        return None
    try:
        record = model.parse(msg.data)
    except InvalidDescription as exc:
        log.warning("registry key %s holds nothing this reader can use: %s", msg.subject[len(_PREFIX) :], exc)
        return None
    if record.series != series:
        log.warning("registry key %s holds the record of %s; left out", msg.subject[len(_PREFIX) :], record.series)
        return None
    return record
