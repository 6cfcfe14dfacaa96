"""Computing a group's assignment with faust's own ``PartitionAssignor``.

faust's assignor is a client-side Kafka assignor: it takes every member's
``ConsumerProtocolMemberMetadata`` (subscription plus faust's user data: the member's URL and its
current assignment, which makes it sticky) and an object answering ``partitions_for_topic``, and
returns each member's ``ConsumerProtocolMemberAssignment``. It groups co-partitioned topics and
places changelog standbys. Kafka's group coordinator would hand it these; here the leader reads
them from the members' records and the partition counts from the topic registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from faust.types.assignor import PartitionAssignorT

from bridges.group.records import MemberRecord

__all__ = ["AssignResult", "FaustAssigner"]


@dataclass(frozen=True)
class AssignResult:
    #: member id -> ``ConsumerProtocolMemberAssignment.encode()``
    assignments: dict[str, bytes]
    #: subscribed topics not (yet) registered; the leader computes again once they exist
    missing_topics: frozenset[str]


class _Cluster:
    """The part of aiokafka's ``ClusterMetadata`` faust's assignor reads."""

    def __init__(self, partitions: Mapping[str, int]) -> None:
        self._partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        count = self._partitions.get(topic)
        return set(range(count)) if count else None


class FaustAssigner:
    """Runs ``app.assignor`` for the leader.

    Args:
        assignor: the app's ``PartitionAssignor``.
        partition_counts: async lookup of registered topics' partition counts.
    """

    def __init__(
        self,
        assignor: PartitionAssignorT,
        partition_counts: Callable[[set[str]], Awaitable[dict[str, int]]],
    ) -> None:
        self._assignor = assignor
        self._partition_counts = partition_counts

    async def assign(self, members: Mapping[str, MemberRecord]) -> AssignResult:
        topics = {topic for record in members.values() for topic in record.subscription}
        counts = await self._partition_counts(topics)
        metadata = {
            member_id: ConsumerProtocolMemberMetadata.decode(record.metadata)
            for member_id, record in members.items()
        }
        # faust's PartitionAssignorT declares less than its one implementation has
        assignments = self._assignor.assign(_Cluster(counts), metadata)  # type: ignore[attr-defined]
        return AssignResult(
            assignments={member_id: a.encode() for member_id, a in assignments.items()},
            missing_topics=frozenset(topics - counts.keys()),
        )

    async def topics_exist(self, topics: frozenset[str]) -> bool:
        return bool(await self._partition_counts(set(topics)))
