"""The rules on an event's ``data``: what each event name must carry, and the bound on every number.

:class:`~contract.events.Event` applies them (``Event._check_data``); they live here so the rules
read as one table, apart from the mechanics of validation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from pydantic import JsonValue

__all__ = ["DataRule", "MAX_DATA_NUMBER", "Path", "data_rules", "numbers_out_of_range"]

MAX_DATA_NUMBER: Final = 2**53
"""Largest magnitude of any number in ``data``, integer or not.

Doubles hold every integer up to 2**53 exactly, and JavaScript and Go clients read every JSON
number as a double; a sum of a window's values stays far from float overflow (1.8e308).
"""


def _is_count(value: Any) -> bool:
    # type() rather than isinstance(): bool is a subclass of int, and True is not a level.
    # (pydantic has already turned int and float subclasses into plain ones.)
    return type(value) is int and 0 <= value <= MAX_DATA_NUMBER


def _is_number(value: Any) -> bool:
    # NaN fails every comparison, so the bounds refuse it along with the infinities.
    kind = type(value)
    return (kind is int or kind is float) and -MAX_DATA_NUMBER <= value <= MAX_DATA_NUMBER


def _is_amount(value: Any) -> bool:
    return _is_number(value) and value >= 0


def _is_heartbeat(value: Any) -> bool:
    return _is_number(value) and 0 < value <= 3600


def _is_outcome(value: Any) -> bool:
    return type(value) is str and value in ("win", "loss", "abandon")


def _is_bool(value: Any) -> bool:
    return type(value) is bool


@dataclass(frozen=True, slots=True)
class DataRule:
    key: str
    check: Callable[[Any], bool]
    problem: str
    required: bool = True


_COUNT: Final = f"must be an integer >= 0 and <= {MAX_DATA_NUMBER}"
_LEVEL = DataRule("level", _is_count, _COUNT)
_SCORE = DataRule("score", _is_amount, f"must be a number >= 0 and <= {MAX_DATA_NUMBER}")
_DURATION = DataRule("duration_ms", _is_count, _COUNT)

_DATA_RULES: Final[dict[tuple[str, str], tuple[DataRule, ...]]] = {
    ("game", "level_started"): (_LEVEL,),
    ("game", "level_completed"): (_LEVEL, _SCORE, _DURATION),
    ("game", "level_failed"): (
        _LEVEL,
        _DURATION,
        DataRule("score", _is_amount, _SCORE.problem, required=False),
    ),
    ("game", "game_finished"): (
        DataRule("outcome", _is_outcome, "must be one of win, loss, abandon"),
        _SCORE,
        _DURATION,
    ),
    ("engagement", "heartbeat"): (DataRule("seconds", _is_heartbeat, "must be a number > 0 and <= 3600"),),
}
_INTERACTION_RULES: Final = (DataRule("correct", _is_bool, "must be a boolean", required=False),)


def data_rules(type_: str | None, name: str | None) -> tuple[DataRule, ...]:
    rules = _DATA_RULES.get((type_, name)) if type_ is not None and name is not None else None
    if rules is not None:
        return rules
    return _INTERACTION_RULES if type_ == "interaction" else ()


#: where a value sits in data: object keys and array positions
Path = tuple[str | int, ...]


def numbers_out_of_range(items: Iterable[tuple[str | int, JsonValue]], path: Path, found: list[Path]) -> None:
    """Appends to ``found`` the path of every number among ``items`` (and inside them) that is
    not finite or has a magnitude above :data:`MAX_DATA_NUMBER`.

    On the ingest hot path: a path is built only for a container or a number out of range, and
    scalars are checked without a call. The depth is bounded by pydantic, which refuses deeper
    nesting (about 250 levels) before this runs.
    """
    for key, value in items:
        kind = type(value)
        if kind is int or kind is float:
            # mypy narrows on `type(value) is int`, not through `kind`: one type() call per value
            if not -MAX_DATA_NUMBER <= value <= MAX_DATA_NUMBER:  # type: ignore[operator]  # NaN fails too
                found.append((*path, key))
        elif kind is dict:
            numbers_out_of_range(value.items(), (*path, key), found)  # type: ignore[union-attr]
        elif kind is list:
            numbers_out_of_range(enumerate(value), (*path, key), found)  # type: ignore[arg-type]
