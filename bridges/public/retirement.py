"""Retiring a metric's old version: its keys, its published results and its group, removed.

Once a newer version of a metric is complete (its finals cover every retained event, see
:mod:`bridges.public.version_progress`) and its old version's workers are stopped, the old
version only takes space, and :func:`retire_version` removes it:

1. Refuse unless another version of the metric is complete: readers would be left with a
   version still going through the stored events, or with none.
2. Refuse while the version's workers run (its group has live members): they would write it all
   again.
3. Delete its registry entries (description and backfill record): from here on no reader is
   offered the version, and asking for it answers "no such version".
4. Purge its KV keys (``<series>.>`` in the ``metrics`` bucket) and its published results
   (``results.<series>.>`` in the results stream), each with one purge request however many
   keys it holds.
5. Remove its consumer group: its offsets, its group keys and the changelogs of its tables
   (:func:`~bridges.transport.group_removal.remove_group`).

Its dead letters stay until their retention ends (``DEADLETTER_RETENTION``): they are the record
of what the retired version refused, which is often why it was fixed. Each step can be run again,
so a retirement that stopped half-way is finished by running it again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from bridges.naming import Naming
from bridges.public.metric_registry import MetricRegistry, ensure_registry_bucket
from bridges.public.streams import METRICS_BUCKET, PublicStreams
from bridges.transport.group_removal import GroupStillRunning, live_members, remove_group
from contract.registry import BACKFILL_PREFIX, MetricVersion
from tables.errors import ConfigError

__all__ = ["Retired", "retire_version"]


@dataclass(frozen=True)
class Retired:
    """What a retirement removed."""

    series: str
    #: the changelog topics that existed and were deleted
    topics: list[str]


async def retire_version(
    client: Client,
    streams: PublicStreams,
    metric: str,
    version: int,
    *,
    changelogs: Collection[str],
) -> Retired:
    """Retire ``metric``'s ``version`` (see the module docstring). ``changelogs``: the topics of
    the version's tables. :class:`ConfigError` naming the problem when it may not be retired."""
    js = client.jetstream()
    async with MetricRegistry(client, streams=streams) as registry:
        versions = (await registry.catalog()).get(metric, [])
    retiring = next((v for v in versions if v.description.version == version), None)
    if retiring is None:
        listed = ", ".join(str(v.description.version) for v in versions) or "none"
        raise ConfigError("version", version, f"{metric} has no such version; known: {listed}", kind="Argument")
    # 1. Another complete version must remain.
    if not any(v.complete for v in versions if v is not retiring):
        raise ConfigError(
            "version", version,
            f"is the only complete version of {metric} ({_states(versions)}): retire it once a newer one is complete",
            kind="Argument",
        )
    series = retiring.description.series
    naming = Naming(streams.prefix)
    # 2. Its workers must be stopped.
    members = await live_members(js, naming, series)
    if members:
        raise GroupStillRunning(series, members)
    # 3. No reader is offered it any more.
    registry_kv = await ensure_registry_bucket(js, streams, update_limits=False)
    for key in (series, f"{BACKFILL_PREFIX}.{series}"):
        await registry_kv.purge(key)
    # 4. Its values and its published results.
    await _purge(client, f"KV_{METRICS_BUCKET}", f"$KV.{METRICS_BUCKET}.{series}.>")
    await _purge(client, streams.results, f"results.{series}.>")
    # 5. Its group.
    topics = await remove_group(js, naming, series, topics=changelogs)
    return Retired(series, topics)


def _states(versions: list[MetricVersion]) -> str:
    return ", ".join(f"version {v.description.version}: {'complete' if v.complete else 'backfilling'}" for v in versions)


async def _purge(client: Client, stream: str, subjects: str) -> None:
    try:
        await client.jetstream().purge_stream(stream, subject=subjects)
    except NotFoundError:
        pass  # never created: nothing to remove
