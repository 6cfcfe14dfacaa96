"""The typed results of ``progression`` (agents/progression.py), an optional refinement."""

from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeInt

from contract.results import Result, TypedValues
from contract.typed import Amount, Ratio

__all__ = ["ProgressionResult", "ProgressionValues", "RESULT"]


class ProgressionValues(TypedValues):
    levels_started: NonNegativeInt
    levels_completed: NonNegativeInt
    levels_failed: NonNegativeInt
    #: the largest level among completed ones; None when none was completed
    max_level: NonNegativeInt | None
    #: the sum of completed levels' scores, 0 if none
    score: Amount
    #: completed / (completed + failed); None when neither happened
    completion_rate: Ratio | None


class ProgressionResult(Result[ProgressionValues]):
    """Levels of ``game`` events: started, completed, failed, best level, score."""

    metric: Literal["progression"]


RESULT = ProgressionResult
