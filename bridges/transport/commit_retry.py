"""Commits the consumer declined, offered again; and the pause between commits while the store is full.

faust hands a commit the offsets it computed from its acks and forgets those acks as it does
(``Consumer._new_offset``). When the consumer declines the commit (the state flush could not
store everything, the lease may have expired, the store is full), faust would not offer those
offsets again, and as the acks after them start past a gap it would never commit that partition
again until a rebalance. So :class:`CommitRetry` keeps the declined offsets and offers them at
every later commit, with or without new acks, until one is committed; and it records them as
faust's in-memory committed offsets, as faust itself does after a failed commit, so the acks
that follow are committed from there. Nothing is committed to the offset store before the state
behind it is stored: declining is what keeps that order.

While JetStream's store is full (the session's :class:`~bridges.storage.StorageState`),
commits are spaced out: from half a second apart, doubling up to :data:`LONGEST_PAUSE`, which is
also how long a worker may take to resume once there is room again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping, MutableMapping
from typing import Final, Generic, TypeVar

from bridges.storage import StorageState
from tables.errors import StorageFull

__all__ = ["CommitRetry", "FIRST_PAUSE", "LONGEST_PAUSE", "cause"]

E = TypeVar("E", bound=BaseException)
K = TypeVar("K", bound=Hashable)

FIRST_PAUSE: Final = 0.5
LONGEST_PAUSE: Final = 5.0


def cause(exc: BaseException, kind: type[E]) -> E | None:
    """``exc`` or the first of its causes that is a ``kind``, if any (a send's error comes
    wrapped in faust's ProducerSendError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class CommitRetry(Generic[K]):
    """The consumer's declined offsets (per partition ``K``) and its pauses while the store is full.

    Args:
        storage: the session's storage-full state (entered and left here for the worker).
        clock: seconds, for the pauses (the event loop's).
    """

    def __init__(self, storage: StorageState, clock: Callable[[], float]) -> None:
        self.storage = storage
        self._clock = clock
        self._declined: dict[K, int] = {}
        self._pause = 0.0
        self._resume_at = 0.0

    # -- declined offsets ---------------------------------------------------------------------

    def offer(self, offsets: MutableMapping[K, int], tps: Collection[K], assigned: Collection[K]) -> None:
        """Add to ``offsets`` (faust's committable ones, of ``tps``) what was declined before."""
        for tp, offset in list(self._declined.items()):
            if tp not in assigned:
                del self._declined[tp]
            elif tp in tps and offset > offsets.get(tp, 0):
                offsets[tp] = offset

    def declined(self, offsets: Mapping[K, int], committed: MutableMapping[K, int | None], assigned: Collection[K]) -> None:
        """``offsets`` were not committed: keep them, and move faust's ``committed`` to them."""
        for tp, offset in offsets.items():
            if tp in assigned:
                self._declined[tp] = max(offset, self._declined.get(tp, 0))
                committed[tp] = max(offset, committed.get(tp) or 0)

    def committed(self, offsets: Mapping[K, int]) -> None:
        """``offsets`` were committed: what was declined up to them is done."""
        for tp, offset in offsets.items():
            if self._declined.get(tp, offset + 1) <= offset:
                del self._declined[tp]

    def forget(self, tps: Collection[K]) -> None:
        """``tps`` were taken anew: they start from the offset store, not from what this worker
        declined when it held them before."""
        for tp in tps:
            self._declined.pop(tp, None)

    # -- the store full -----------------------------------------------------------------------

    def waiting(self) -> bool:
        """Whether this commit is to be skipped: the store is full and the pause not over."""
        return self.storage.full and self._clock() < self._resume_at

    def refused(self, error: StorageFull | None, what: str) -> None:
        """A commit was declined, ``error`` when for lack of room: pause longer while full."""
        if error is not None:
            self.storage.refused(error, what)
        if self.storage.full:
            self._pause = min(max(self._pause * 2, FIRST_PAUSE), LONGEST_PAUSE)
            self._resume_at = self._clock() + self._pause

    def stored(self) -> None:
        """A flush and its commit went through: there is room again."""
        self.storage.clear()
        self._pause = 0.0
