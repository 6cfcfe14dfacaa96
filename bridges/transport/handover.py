"""What one rebalance changes for one member: the partitions it keeps, gives up and takes.

The group protocol is cooperative (:mod:`bridges.group.coordinator`, step 4): a member reads its
next assignment before it revokes anything, gives up only what it loses and takes only what it
gains, so the readers, offset claims and changelog fences of what it keeps stay as they are.

A changelog partition whose role changes counts as lost and gained: an active one is fenced and
written by its owner, a standby one is only read, and neither becomes the other in place.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection
from dataclasses import dataclass

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from faust.assignor.client_assignment import ClientMetadata
from faust.types import TP

__all__ = ["Handover", "Holding"]


@dataclass(frozen=True)
class Holding:
    """The partitions a member holds, and those of them it holds as an active (not a standby)."""

    tps: frozenset[TP]
    actives: frozenset[TP]

    @classmethod
    def nothing(cls) -> Holding:
        return cls(frozenset(), frozenset())

    @classmethod
    def decode(cls, raw: bytes) -> Holding:
        """A member's part of an assignment (``ConsumerProtocolMemberAssignment``, encoded).

        faust's assignor writes the member's actives and standbys into the assignment's user
        data, zlib-compressed (``PartitionAssignor._compress``); its ``on_assignment`` reads them
        the same way, but only once the member takes the assignment, after the revoke.
        """
        protocol = ConsumerProtocolMemberAssignment.decode(raw)
        tps = frozenset(TP(topic, p) for topic, partitions in protocol.assignment for p in partitions)
        if not protocol.user_data:
            return cls(tps, tps)
        metadata = ClientMetadata.loads(zlib.decompress(protocol.user_data))
        return cls(tps, frozenset(metadata.assignment.active_tps) & tps)


@dataclass(frozen=True)
class Handover:
    """The partitions a member keeps, loses and gains going from one holding to the next."""

    kept: frozenset[TP]
    lost: frozenset[TP]
    gained: frozenset[TP]

    @classmethod
    def between(cls, held: Holding, following: Holding, changelogs: Collection[str]) -> Handover:
        """``changelogs``: the changelog topics, whose partitions have a role (active, standby)."""

        def same_role(tp: TP) -> bool:
            return tp.topic not in changelogs or (tp in held.actives) == (tp in following.actives)

        kept = frozenset(tp for tp in held.tps & following.tps if same_role(tp))
        return cls(kept=kept, lost=held.tps - kept, gained=following.tps - kept)

    @property
    def moves(self) -> bool:
        """Whether anything is lost or gained (else the member has nothing to do)."""
        return bool(self.lost or self.gained)
