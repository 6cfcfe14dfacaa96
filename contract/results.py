"""The result of one window: the public contract of the KV values and result messages.

The same JSON is the value of ``metrics`` KV key ``<metric>.<student_id>[.<game_id>].<start>``
and the payload published on ``results.<metric>.<student_id>``::

    {"metric": "engagement", "key": {"student_id": "s-42"},
     "window": {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T10:01:00Z"},
     "final": true, "events": 2,
     "values": {"interactions": 2, "answers": 2, "correct": 1, "accuracy": 0.5,
                "active_seconds": 0, "sessions": 0}}

``final`` is true for a closed window. With ``METRICS_UPDATE_SECONDS`` the KV key of a window still
open holds its value so far, ``"final": false`` (never published on a result subject), until the
final value replaces it for good; the models take both.

Keys, subjects and the id rule come from :mod:`contract.names`. The models are strict about
shape (no unknown fields, a key that fits the metric) and lenient about number spelling: sums of
integers stay ``int``, other numbers are ``float``.
"""

from __future__ import annotations

from typing import Annotated, Final, Generic, Literal, TypeAlias, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from contract.names import Id, metrics_key, result_subject
from tables.errors import StreamsError

__all__ = [
    "EngagementResult",
    "EngagementValues",
    "InvalidResult",
    "MetricResult",
    "OutcomesResult",
    "OutcomesValues",
    "ProgressionResult",
    "ProgressionValues",
    "ResultWindow",
    "StudentGameKey",
    "StudentKey",
    "parse_result",
]

_Ratio = Annotated[float, Field(ge=0, le=1)]
# int | float: pydantic's smart union keeps 150 an int and 150.5 a float.
_Amount = NonNegativeInt | NonNegativeFloat


class InvalidResult(StreamsError, ValueError):
    """Bytes that are not a result of the contract; ``problems`` lists ``field: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("not a metric result: " + "; ".join(problems[:5]))


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ResultWindow(_Model):
    """``[start, end)`` in UTC, whole seconds."""

    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> ResultWindow:
        if self.end <= self.start:
            raise ValueError("window end must be after its start")
        return self


class StudentKey(_Model):
    student_id: Id


class StudentGameKey(_Model):
    student_id: Id
    game_id: Id


class ProgressionValues(_Model):
    levels_started: NonNegativeInt
    levels_completed: NonNegativeInt
    levels_failed: NonNegativeInt
    #: the largest level among completed ones; None when none was completed
    max_level: NonNegativeInt | None
    #: the sum of completed levels' scores, 0 if none
    score: _Amount
    #: completed / (completed + failed); None when neither happened
    completion_rate: _Ratio | None


class EngagementValues(_Model):
    interactions: NonNegativeInt
    #: interactions whose data.correct is a boolean
    answers: NonNegativeInt
    correct: NonNegativeInt
    #: correct / answers; None without answers
    accuracy: _Ratio | None
    #: the sum of heartbeat seconds
    active_seconds: _Amount
    #: engagement events named session_started
    sessions: NonNegativeInt


class OutcomesValues(_Model):
    games: PositiveInt
    wins: NonNegativeInt
    losses: NonNegativeInt
    abandons: NonNegativeInt
    win_rate: _Ratio
    mean_score: NonNegativeFloat
    mean_duration_ms: NonNegativeFloat


M = TypeVar("M", bound=str)
K = TypeVar("K", bound=BaseModel)
V = TypeVar("V", bound=BaseModel)


class _Result(_Model, Generic[M, K, V]):
    metric: M
    key: K
    window: ResultWindow
    #: False: the current value of a window still open (KV only), replaced by the final one
    final: bool
    #: events counted in the window (a window without any has no result)
    events: PositiveInt
    values: V

    @property
    def student_id(self) -> str:
        return self.key.student_id  # type: ignore[attr-defined]

    @property
    def window_start(self) -> int:
        """The window start in epoch seconds, as it appears in the KV key."""
        return int(self.window.start.timestamp())

    @property
    def kv_key(self) -> str:
        """This result's key in the ``metrics`` bucket."""
        return metrics_key(self.metric, self.student_id, self.window_start, getattr(self.key, "game_id", None))

    @property
    def subject(self) -> str:
        """The subject the result is published on."""
        return result_subject(self.metric, self.student_id)

    def to_json_bytes(self) -> bytes:
        """Compact JSON with window bounds written ``YYYY-MM-DDTHH:MM:SSZ``."""
        return self.model_dump_json().encode()


class ProgressionResult(_Result[Literal["progression"], StudentKey, ProgressionValues]):
    """Levels of ``game`` events: started, completed, failed, best level, score."""


class EngagementResult(_Result[Literal["engagement"], StudentKey, EngagementValues]):
    """Every valid event: interactions, answers and accuracy, active seconds, sessions."""


class OutcomesResult(_Result[Literal["outcomes"], StudentGameKey, OutcomesValues]):
    """``game_finished`` events of one game: wins, losses, abandons, mean score and duration."""


MetricResult: TypeAlias = Annotated[
    ProgressionResult | EngagementResult | OutcomesResult, Field(discriminator="metric")
]
"""Any result; the ``metric`` field says which."""

_ADAPTER: Final[TypeAdapter[ProgressionResult | EngagementResult | OutcomesResult]] = TypeAdapter(
    MetricResult
)


def parse_result(raw: bytes | str) -> ProgressionResult | EngagementResult | OutcomesResult:
    """Parse and check one result value; raises :class:`InvalidResult` naming each problem."""
    try:
        return _ADAPTER.validate_json(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc'][1:]) or '(value)'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidResult(problems) from None
