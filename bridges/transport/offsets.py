"""Committed offsets, stored durably in a KV bucket with compare-and-set.

One key per (group, topic, partition); the value is JSON
``{"offset": <next offset to read or null>, "owner": <member>, "generation": <n>}``.

Fencing: when a worker takes a partition it *claims* the key — rewrites it with a
compare-and-set against the revision it read — and remembers the new revision. Every commit is
a compare-and-set against the revision it last wrote. An older owner that was paused or cut off
still holds an older revision, so its late commits are refused (:class:`FencedError`) instead of
silently moving the offset under the new owner.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from bridges.jetstream import ensure_bucket
from bridges.naming import Naming
from bridges.storage import storage_full_from
from tables.errors import BrokenError, FencedError

__all__ = ["OffsetStore", "PartitionRef"]

log = logging.getLogger(__name__)

_CLAIM_ATTEMPTS = 5


@dataclass(frozen=True, order=True)
class PartitionRef:
    topic: str
    partition: int


class OffsetStore:
    """Reads, claims and commits one group's offsets."""

    def __init__(self, js: JetStreamContext, naming: Naming, group: str, *, replicas: int = 1) -> None:
        self._js = js
        self._naming = naming
        self._group = group
        self._replicas = replicas
        self._kv: KeyValue | None = None
        self._revisions: dict[PartitionRef, int] = {}
        self._owner = ""
        self._generation = 0

    async def start(self) -> None:
        self._kv = await ensure_bucket(self._js, self._naming.offsets_bucket, replicas=self._replicas)

    def set_identity(self, owner: str, generation: int) -> None:
        """Who commits (recorded with each commit, for operators reading the bucket)."""
        self._owner = owner
        self._generation = generation

    async def read(self, refs: Iterable[PartitionRef]) -> dict[PartitionRef, int | None]:
        """Committed offsets without claiming (for monitoring and tests)."""
        refs = list(refs)
        results = await asyncio.gather(*(self._get(ref) for ref in refs))
        return {ref: offset for ref, (offset, _) in zip(refs, results, strict=True)}

    async def claim(self, refs: Iterable[PartitionRef]) -> dict[PartitionRef, int | None]:
        """Take ownership of partitions; returns their committed offsets (None: never committed)."""
        refs = list(refs)
        offsets = await asyncio.gather(*(self._claim(ref) for ref in refs))
        return dict(zip(refs, offsets, strict=True))

    def release(self, refs: Iterable[PartitionRef]) -> None:
        """Forget revisions of partitions given up (commits to them are no longer ours)."""
        for ref in refs:
            self._revisions.pop(ref, None)

    def owns(self, ref: PartitionRef) -> bool:
        return ref in self._revisions

    async def commit(self, offsets: Mapping[PartitionRef, int]) -> set[PartitionRef]:
        """Commit offsets; returns the partitions whose commit was refused because of a fence.

        Partitions not claimed by this store are reported as fenced too: committing them would
        be writing to a partition someone else may own.
        """
        refs = list(offsets)
        outcomes = await asyncio.gather(
            *(self._commit_one(ref, offsets[ref]) for ref in refs), return_exceptions=True
        )
        fenced: set[PartitionRef] = set()
        for ref, outcome in zip(refs, outcomes, strict=True):
            if isinstance(outcome, FencedError):
                fenced.add(ref)
            elif isinstance(outcome, BaseException):
                raise outcome
        return fenced

    # -- internals ------------------------------------------------------------------------

    def _key(self, ref: PartitionRef) -> str:
        return self._naming.offset_key(self._group, ref.topic, ref.partition)

    def _encode(self, offset: int | None) -> bytes:
        return json.dumps(
            {"offset": offset, "owner": self._owner, "generation": self._generation},
            separators=(",", ":"),
        ).encode()

    async def _get(self, ref: PartitionRef) -> tuple[int | None, int]:
        try:
            entry = await self._bucket().get(self._key(ref))
        except KeyNotFoundError:
            return None, 0
        if not entry.value:
            return None, entry.revision or 0
        return json.loads(entry.value).get("offset"), entry.revision or 0

    async def _claim(self, ref: PartitionRef) -> int | None:
        kv = self._bucket()
        for _ in range(_CLAIM_ATTEMPTS):
            offset, revision = await self._get(ref)
            try:
                if revision:
                    new_revision = await kv.update(self._key(ref), self._encode(offset), last=revision)
                else:
                    new_revision = await kv.create(self._key(ref), self._encode(offset))
            except KeyWrongLastSequenceError:
                continue  # a concurrent commit or claim: read again
            except NatsError as exc:
                full = storage_full_from(exc, self._key(ref))
                if full is not None:
                    raise full from None
                raise
            self._revisions[ref] = new_revision
            return offset
        raise BrokenError(f"could not claim offsets of {ref.topic}[{ref.partition}]: contended")

    async def _commit_one(self, ref: PartitionRef, offset: int) -> None:
        """Compare-and-set the offset against the revision this worker wrote last.

        A write whose answer is lost (a cluster electing a new stream leader: no response, or
        a timeout) may still have been stored, and then the revision held here is one behind.
        So a refused compare-and-set reads the key first: if its value is this owner's of this
        generation, the lost write did land, and the commit is made again on top of it.
        Otherwise someone claimed the partition: fenced.
        """
        revision = self._revisions.get(ref)
        resource = f"{ref.topic}[{ref.partition}]"
        if revision is None:
            raise FencedError("offset commit", resource)
        for attempt in (1, 2):
            try:
                self._revisions[ref] = await self._bucket().update(
                    self._key(ref), self._encode(offset), last=revision
                )
                return
            except KeyWrongLastSequenceError:
                current = await self._own_revision(ref) if attempt == 1 else None
                if current is None:
                    self._revisions.pop(ref, None)
                    log.warning("offset commit for %s refused: another worker owns it now", resource)
                    raise FencedError("offset commit", resource) from None
                revision = current
            except (NatsError, TimeoutError) as exc:
                full = storage_full_from(exc, self._key(ref))
                if full is not None:
                    raise full from None
                raise BrokenError(f"offset commit for {resource} failed: {exc or type(exc).__name__}") from None

    async def _own_revision(self, ref: PartitionRef) -> int | None:
        """The key's revision if its value was written by this owner.

        Any generation of it: a member keeps partitions from one generation to the next
        (cooperative rebalances), and a commit whose answer was lost may have been written under
        the previous one. A member id is one membership, and every write of it is a
        compare-and-set, so a value of its own is never written over another owner's claim."""
        try:
            entry = await self._bucket().get(self._key(ref))
        except (KeyNotFoundError, NatsError, TimeoutError):
            return None
        try:
            value = json.loads(entry.value or b"{}")
        except ValueError:
            return None
        if value.get("owner") == self._owner:
            return entry.revision
        return None

    def _bucket(self) -> KeyValue:
        if self._kv is None:
            raise BrokenError("the offset store has not been started")
        return self._kv
