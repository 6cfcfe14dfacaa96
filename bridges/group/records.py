"""The documents a consumer group keeps in its KV bucket.

Keys, under the group's token ``G``::

    G.members.<member id>   MemberRecord, with a per-key TTL: the member's lease
    G.leader                the leader's member id, with a per-key TTL: the leader's lease
    G.assignment            Assignment, written by the leader with compare-and-set
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Assignment", "MemberRecord"]


@dataclass(frozen=True)
class MemberRecord:
    """What a member tells the group about itself.

    ``metadata`` is faust's assignor metadata (``ConsumerProtocolMemberMetadata.encode()``): it
    carries the member's current assignment, which makes the assignment sticky. ``acked`` is the
    newest generation whose revocation this member has finished (it committed and stopped
    processing what it held before); ``applied`` the generation whose partitions it holds now.
    """

    member_id: str
    subscription: tuple[str, ...]
    metadata: bytes
    acked: int = 0
    applied: int = 0
    host: str = ""
    pid: int = 0

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "member_id": self.member_id,
                "subscription": list(self.subscription),
                "metadata": base64.b64encode(self.metadata).decode(),
                "acked": self.acked,
                "applied": self.applied,
                "host": self.host,
                "pid": self.pid,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> MemberRecord:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            member_id=data["member_id"],
            subscription=tuple(data["subscription"]),
            metadata=base64.b64decode(data["metadata"]),
            acked=int(data.get("acked", 0)),
            applied=int(data.get("applied", 0)),
            host=data.get("host", ""),
            pid=int(data.get("pid", 0)),
        )


@dataclass(frozen=True)
class Assignment:
    """One generation of the group's assignment, computed by the leader.

    ``basis`` records what it was computed from (each member's subscription), so a new leader can
    tell whether the group still matches it.
    """

    generation: int
    leader: str
    members: dict[str, bytes] = field(default_factory=dict)  # member id -> encoded assignment
    basis: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "generation": self.generation,
                "leader": self.leader,
                "members": {m: base64.b64encode(a).decode() for m, a in self.members.items()},
                "basis": {m: list(s) for m, s in self.basis.items()},
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Assignment:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            generation=int(data["generation"]),
            leader=data["leader"],
            members={m: base64.b64decode(a) for m, a in data["members"].items()},
            basis={m: tuple(s) for m, s in data.get("basis", {}).items()},
        )
