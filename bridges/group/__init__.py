"""Consumer groups over JetStream KV (see :mod:`bridges.group.coordinator` for the protocol)."""

from bridges.group.assign import AssignResult, FaustAssigner
from bridges.group.coordinator import (
    Assigner,
    GroupCoordinator,
    GroupSettings,
    GroupView,
    RebalanceListener,
)
from bridges.group.lease_clock import UNFENCED, LeaseClock, LeaseDeadline
from bridges.group.records import Assignment, MemberRecord

__all__ = [
    "AssignResult",
    "Assigner",
    "Assignment",
    "FaustAssigner",
    "GroupCoordinator",
    "GroupSettings",
    "GroupView",
    "LeaseClock",
    "LeaseDeadline",
    "MemberRecord",
    "RebalanceListener",
    "UNFENCED",
]
