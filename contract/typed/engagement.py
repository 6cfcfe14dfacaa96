"""The typed results of ``engagement`` (agents/engagement.py), an optional refinement."""

from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeInt

from contract.results import Result, TypedValues
from contract.typed import Amount, Ratio

__all__ = ["EngagementResult", "EngagementValues", "RESULT"]


class EngagementValues(TypedValues):
    interactions: NonNegativeInt
    #: interactions whose data.correct is a boolean
    answers: NonNegativeInt
    correct: NonNegativeInt
    #: correct / answers; None without answers
    accuracy: Ratio | None
    #: the sum of heartbeat seconds
    active_seconds: Amount
    #: engagement events named session_started
    sessions: NonNegativeInt


class EngagementResult(Result[EngagementValues]):
    """Every valid event: interactions, answers and accuracy, active seconds, sessions."""

    metric: Literal["engagement"]


RESULT = EngagementResult
