"""The typed results of ``outcomes`` (agents/outcomes.py), an optional refinement."""

from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeFloat, NonNegativeInt, PositiveInt

from contract.results import Result, TypedValues
from contract.typed import Ratio

__all__ = ["OutcomesResult", "OutcomesValues", "RESULT"]


class OutcomesValues(TypedValues):
    games: PositiveInt
    wins: NonNegativeInt
    losses: NonNegativeInt
    abandons: NonNegativeInt
    win_rate: Ratio
    mean_score: NonNegativeFloat
    mean_duration_ms: NonNegativeFloat


class OutcomesResult(Result[OutcomesValues]):
    """``game_finished`` events of one game (the key's ``game_id``): wins, losses, abandons, mean
    score and duration."""

    metric: Literal["outcomes"]

    @property
    def game_id(self) -> str:
        return self.key["game_id"]


RESULT = OutcomesResult
