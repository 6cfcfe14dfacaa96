"""Removing a consumer group's state from NATS, once the group is done for good.

A group leaves its committed offsets (:mod:`bridges.transport.offsets`), its membership, leader
and assignment keys (:mod:`bridges.group`) and the changelogs of its tables behind; none of them
ages out, since a group paused for a week must resume where it was. A group that will never run
again (a retired metric version) is removed by :func:`remove_group`:

1. Refuse while the group has live members: a worker still running would write its offsets and
   its changelog again. A member's key lives as long as its lease, so a worker stopped for good
   stops counting within one lease.
2. Delete the group's topics the caller names (its tables' changelogs): each topic's registration
   first, then its streams (:meth:`~bridges.transport.topics.TopicRegistry.delete`).
3. Purge the group's committed offsets of every topic, then its group keys.

Each step can be run again: a removal that stopped half-way is finished by the next one.
"""

from __future__ import annotations

from collections.abc import Collection

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError

from bridges.group.store import GroupKeys
from bridges.naming import Naming, decode_token, encode_token
from bridges.transport.topics import TopicRegistry
from tables.errors import BrokenError

__all__ = ["GroupStillRunning", "live_members", "remove_group"]


class GroupStillRunning(BrokenError):
    """The group has live members; ``members`` names them."""

    def __init__(self, group: str, members: list[str]) -> None:
        self.members = members
        super().__init__(
            f"group {group} still has {len(members)} live member(s) ({', '.join(members[:3])}): stop its workers "
            "first (a stopped worker's membership ends within its lease)"
        )


async def live_members(js: JetStreamContext, naming: Naming, group: str) -> list[str]:
    """The members of ``group`` whose lease has not run out, sorted."""
    keys = GroupKeys(naming, group)
    try:
        kv = await js.key_value(keys.bucket)
    except (BucketNotFoundError, NotFoundError):
        return []  # no group ever ran here
    watcher = await kv.watch(keys.members_filter, ignore_deletes=True)
    prefix = f"{keys.root}.members."
    found: list[str] = []
    try:
        async for entry in watcher:
            if entry is None:  # the last value of every key has been delivered
                break
            if entry.value:
                found.append(decode_token(entry.key[len(prefix) :]))
    finally:
        await watcher.stop()
    return sorted(found)


async def remove_group(js: JetStreamContext, naming: Naming, group: str, *, topics: Collection[str]) -> list[str]:
    """Remove ``group``'s state and its ``topics`` (see the module docstring); the topics that
    existed. :class:`GroupStillRunning` while it has live members."""
    # 1. Nobody may be writing it again.
    members = await live_members(js, naming, group)
    if members:
        raise GroupStillRunning(group, members)
    # 2. Its topics.
    registry = TopicRegistry(js, naming)
    await registry.start()
    deleted = [topic for topic in sorted(topics) if await registry.delete(topic)]
    # 3. Its offsets, then its membership.
    await _purge(js, naming.offsets_bucket, f"{encode_token(group)}.>")
    await _purge(js, naming.groups_bucket, GroupKeys(naming, group).all)
    return deleted


async def _purge(js: JetStreamContext, bucket: str, keys: str) -> None:
    """Remove every key of ``bucket`` matching ``keys`` (a subject filter), markers and all."""
    try:
        await js.purge_stream(f"KV_{bucket}", subject=f"$KV.{bucket}.{keys}")
    except NotFoundError:
        pass  # the bucket was never made: nothing to remove
