"""The state a consumer commits for: windowed tables registered as :class:`StateOwner`.

Each is flushed before every offset commit (its changelog stored first, so no offset gets ahead
of the state it belongs to) and asked where its partitions resume. :meth:`StateOwners.flush`
sorts what a flush can fail with into the outcomes the consumer acts on; anything else is a bug
and propagates.
"""

from __future__ import annotations

from dataclasses import dataclass

from faust.exceptions import ProducerSendError
from faust.types import TP

from bridges.transport.commit_retry import cause
from tables.changelog import StateOwner
from tables.errors import BrokenError, FencedError, StorageFull

__all__ = ["FlushFailure", "StateOwners"]


@dataclass(frozen=True)
class FlushFailure:
    """Why a flush did not store everything; the owners keep what they could not store."""

    error: BaseException
    #: a newer owner fenced a changelog partition (or the lease deadline fenced a final result)
    fenced: bool
    #: JetStream has no room: lasts until an operator makes some
    full: StorageFull | None


class StateOwners:
    """The state owners of one consumer, in registration order."""

    def __init__(self) -> None:
        self._owners: list[StateOwner] = []

    def register(self, owner: StateOwner) -> None:
        self._owners.append(owner)

    def __bool__(self) -> bool:
        return bool(self._owners)

    async def flush(self) -> FlushFailure | None:
        """Flush every owner; None once all of them stored everything.

        A send refused by a fence, storage full, or anything not stored yet (NATS away, the
        lease not renewed in time: a :class:`BrokenError`) is a :class:`FlushFailure`; any
        other error propagates.
        """
        try:
            for owner in self._owners:
                await owner.flush()
        except (ProducerSendError, BrokenError) as exc:
            fenced = cause(exc, FencedError) is not None
            full = cause(exc, StorageFull)
            if not fenced and full is None and cause(exc, BrokenError) is None:
                raise
            return FlushFailure(exc, fenced=fenced, full=full)
        return None

    def resume_offset(self, tp: TP) -> int | None:
        """Where the first owner that knows ``tp`` says it resumes; None: the committed offset."""
        for owner in self._owners:
            offset = owner.resume_offset(tp.topic, tp.partition)
            if offset is not None:
                return offset
        return None

