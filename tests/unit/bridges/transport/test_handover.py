"""What a cooperative rebalance moves for one member, from a table of cases, and the decoding of
a member's assignment as faust's assignor writes it."""

from __future__ import annotations

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from faust.assignor.client_assignment import ClientAssignment, ClientMetadata
from faust.assignor.partition_assignor import PartitionAssignor
from faust.types import TP

from bridges.transport.handover import Handover, Holding

CHANGELOGS = {"app-totals-changelog"}


def tps(spec: str) -> frozenset[TP]:
    """``"n0 n1 c2"``: partitions of the source topic ``n`` and of the changelog ``c``."""
    topics = {"n": "numbers", "c": "app-totals-changelog"}
    return frozenset(TP(topics[item[0]], int(item[1:])) for item in spec.split())


def holding(all_: str, actives: str = "") -> Holding:
    return Holding(tps(all_), tps(actives))


@pytest.mark.parametrize(
    ("held", "following", "kept", "lost", "gained"),
    [
        # a worker joins: the first one keeps half and loses the rest
        (holding("n0 n1 n2 n3 c0 c1 c2 c3", "c0 c1 c2 c3"), holding("n0 n1 c0 c1", "c0 c1"),
         "n0 n1 c0 c1", "n2 n3 c2 c3", ""),
        # a worker leaves: a survivor keeps all it had and gains the rest
        (holding("n0 n1 c0 c1", "c0 c1"), holding("n0 n1 n2 n3 c0 c1 c2 c3", "c0 c1 c2 c3"),
         "n0 n1 c0 c1", "", "n2 n3 c2 c3"),
        # nothing changes: nothing to do
        (holding("n0 c0 c1", "c0"), holding("n0 c0 c1", "c0"), "n0 c0 c1", "", ""),
        # a changelog partition kept as a standby after being active: lost and gained
        (holding("n0 n1 c0 c1", "c0 c1"), holding("n0 c0 c1", "c0"), "n0 c0", "n1 c1", "c1"),
        # a standby promoted to active: lost and gained too
        (holding("n0 c0 c1", "c0"), holding("n0 n1 c0 c1", "c0 c1"), "n0 c0", "c1", "n1 c1"),
        # the first assignment, and giving everything up
        (Holding.nothing(), holding("n0 c0", "c0"), "", "", "n0 c0"),
        (holding("n0 c0", "c0"), Holding.nothing(), "", "n0 c0", ""),
    ],
)
def test_what_a_member_keeps_loses_and_gains(
    held: Holding, following: Holding, kept: str, lost: str, gained: str
) -> None:
    handover = Handover.between(held, following, CHANGELOGS)
    assert handover == Handover(kept=tps(kept), lost=tps(lost), gained=tps(gained))
    assert handover.moves == bool(lost or gained)


def test_a_source_partition_has_no_role_to_change() -> None:
    # sources are never "active" in a Holding built by hand: they are kept all the same
    handover = Handover.between(holding("n0"), holding("n0", "n0"), CHANGELOGS)
    assert handover.kept == tps("n0") and not handover.moves


def test_a_members_actives_and_standbys_are_read_from_fausts_user_data() -> None:
    assignment = ClientAssignment(
        actives={"numbers": [0, 1], "app-totals-changelog": [0, 1]},
        standbys={"app-totals-changelog": [2]},
    )
    metadata = ClientMetadata(
        assignment=assignment, url="http://w1:6066", changelog_distribution={}, topic_groups={}
    )
    raw = ConsumerProtocolMemberAssignment(
        0,
        [("numbers", [0, 1]), ("app-totals-changelog", [0, 1, 2])],
        PartitionAssignor._compress(metadata.dumps()),
    ).encode()
    assert Holding.decode(raw) == holding("n0 n1 c0 c1 c2", "n0 n1 c0 c1")


def test_an_assignment_without_user_data_holds_everything_as_active() -> None:
    raw = ConsumerProtocolMemberAssignment(0, [("numbers", [3])], b"").encode()
    assert Holding.decode(raw) == holding("n3", "n3")
