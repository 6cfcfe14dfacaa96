"""Reading a consumer group's state straight from its KV bucket, as an operator would."""

from __future__ import annotations

from dataclasses import dataclass

import nats
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NoKeysError

from bridges.group.records import Assignment, MemberRecord
from bridges.group.store import GroupKeys
from bridges.naming import Naming

__all__ = ["GroupState", "read_group"]


@dataclass(frozen=True)
class GroupState:
    members: dict[str, MemberRecord]
    assignment: Assignment | None

    @property
    def generation(self) -> int:
        return self.assignment.generation if self.assignment else 0

    def partitions_of(self, member_id: str, topic: str) -> set[int]:
        """Partitions of ``topic`` the member is assigned in the current generation."""
        if self.assignment is None or member_id not in self.assignment.members:
            return set()
        decoded = ConsumerProtocolMemberAssignment.decode(self.assignment.members[member_id])
        return {p for t, partitions in decoded.assignment if t == topic for p in partitions}

    def owners(self, topic: str) -> dict[int, list[str]]:
        """Partition -> members holding it now (assigned in, and having applied, this generation)."""
        out: dict[int, list[str]] = {}
        for member_id, record in self.members.items():
            if record.applied != self.generation:
                continue
            for partition in self.partitions_of(member_id, topic):
                out.setdefault(partition, []).append(member_id)
        return out

    def fully_owned(self, topic: str, partitions: int, *, by: set[str] | None = None) -> bool:
        """Every partition held by exactly one member (optionally: only members in ``by``)."""
        owners = self.owners(topic)
        if sorted(owners) != list(range(partitions)) or any(len(m) != 1 for m in owners.values()):
            return False
        return by is None or all(m[0] in by for m in owners.values())


async def read_group(url: str, group: str, prefix: str = "faust") -> GroupState:
    keys = GroupKeys(Naming(prefix), group)
    client = await nats.connect(url)
    try:
        try:
            kv = await client.jetstream().key_value(keys.bucket)
        except BucketNotFoundError:
            return GroupState({}, None)  # no worker has started yet
        members: dict[str, MemberRecord] = {}
        assignment = None
        try:
            names = [k for k in await kv.keys() if k.startswith(f"{keys.root}.")]
        except NoKeysError:
            names = []
        for name in names:
            try:
                entry = await kv.get(name)
            except KeyNotFoundError:
                continue
            if not entry.value:
                continue
            if name.startswith(f"{keys.root}.members."):
                record = MemberRecord.from_json(entry.value)
                members[record.member_id] = record
            elif name == keys.assignment:
                assignment = Assignment.from_json(entry.value)
        return GroupState(members, assignment)
    finally:
        await client.close()
