"""Compare-and-set writes with per-key TTLs on the group bucket.

nats-py's ``kv.create`` cannot recreate a key whose TTL ran out (the server leaves a delete
marker, and the client re-raises), and ``kv.update`` cannot set a TTL, so leases are written
here by hand: a publish to ``$KV.<bucket>.<key>`` with ``Nats-Expected-Last-Subject-Sequence``
(the compare-and-set) and ``Nats-TTL`` (the lease).
"""

from __future__ import annotations

import re

from nats.js import JetStreamContext
from nats.js.errors import APIError, BadRequestError, KeyNotFoundError
from nats.js.kv import KeyValue

from bridges.jetstream import ensure_bucket
from bridges.naming import Naming, encode_token
from bridges.storage import storage_full_from

__all__ = ["CasConflict", "GroupKeys", "GroupStore"]

_WRONG_LAST = {10071, 10164}
_LAST_SEQ = re.compile(r"wrong last sequence: (\d+)")
#: how long the server keeps the delete marker of an expired lease (watchers must see it)
MARKER_TTL = 60.0


class CasConflict(Exception):
    """The key's revision was not the one expected (someone else wrote, or the lease expired)."""

    def __init__(self, key: str, current: int | None) -> None:
        self.key = key
        self.current = current
        super().__init__(f"{key}: revision is now {current}")


class GroupKeys:
    def __init__(self, naming: Naming, group: str) -> None:
        self.bucket = naming.groups_bucket
        self.root = encode_token(group)

    def member(self, member_id: str) -> str:
        return f"{self.root}.members.{encode_token(member_id)}"

    @property
    def members_filter(self) -> str:
        return f"{self.root}.members.*"

    @property
    def leader(self) -> str:
        return f"{self.root}.leader"

    @property
    def assignment(self) -> str:
        return f"{self.root}.assignment"

    @property
    def all(self) -> str:
        return f"{self.root}.>"


class GroupStore:
    """KV operations a group needs, over one JetStream context."""

    def __init__(self, js: JetStreamContext, keys: GroupKeys, *, replicas: int = 1) -> None:
        self._js = js
        self.keys = keys
        self._replicas = replicas
        self._kv: KeyValue | None = None

    async def open(self) -> KeyValue:
        if self._kv is None:
            self._kv = await ensure_bucket(
                self._js, self.keys.bucket, replicas=self._replicas, limit_marker_ttl=MARKER_TTL
            )
        return self._kv

    async def put(self, key: str, value: bytes, *, expect: int, ttl: float | None = None) -> int:
        """Write ``value`` if the key's revision is ``expect`` (0: the key must not exist).

        Returns the new revision. Raises :class:`CasConflict` with the current revision, and
        :class:`~tables.errors.StorageFull` when JetStream has no room for the write.
        """
        await self.open()
        headers = {"Nats-Expected-Last-Subject-Sequence": str(expect)}
        if ttl is not None:
            headers["Nats-TTL"] = f"{max(1, round(ttl))}s"
        subject = f"$KV.{self.keys.bucket}.{key}"
        try:
            ack = await self._js.publish(subject, value, headers=headers)
        except APIError as exc:
            if isinstance(exc, BadRequestError) and exc.err_code in _WRONG_LAST:
                match = _LAST_SEQ.search(exc.description or "")
                raise CasConflict(key, int(match.group(1)) if match else None) from None
            full = storage_full_from(exc, subject)
            if full is not None:
                raise full from None
            raise
        return int(ack.seq)

    async def create(self, key: str, value: bytes, *, ttl: float | None = None) -> int:
        """Create the key, also over the delete marker an expired lease leaves behind."""
        try:
            return await self.put(key, value, expect=0, ttl=ttl)
        except CasConflict as conflict:
            current = await self.get(key)
            if current is not None or conflict.current is None:
                raise
            return await self.put(key, value, expect=conflict.current, ttl=ttl)

    async def get(self, key: str) -> tuple[bytes, int] | None:
        """``(value, revision)``, or None when absent or deleted."""
        kv = await self.open()
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.operation in ("DEL", "PURGE"):
            return None
        return entry.value, int(entry.revision or 0)

    async def delete(self, key: str, *, expect: int | None = None) -> None:
        kv = await self.open()
        try:
            await kv.delete(key, last=expect)
        except (KeyNotFoundError, BadRequestError):
            pass  # already gone, or replaced: either way not ours to delete any more
