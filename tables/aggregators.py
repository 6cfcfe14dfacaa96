"""Aggregators: one small protocol shared by the built-ins and by user-defined ones.

An aggregator is three functions over a *state* (plus ``merge`` for session windows)::

    initialize() -> S                     the state of an empty window
    agg(state, event, ts) -> S            the state after one more event (ts: epoch seconds)
    result(state) -> R                    the value reported when the window closes
    merge(a, b) -> S                      two windows' states as one (session windows only)

Two rules make the state layer simple and safe, and user aggregators must keep them too:

- **States are JSON-compatible** (dict with str keys, list, str, int, float, bool, None, nested):
  they are written to a changelog as JSON and read back after a restart, and aggregation must
  carry on from the read-back state exactly as from the original. So no sets, tuples or datetimes.
- **States are values**: ``agg`` and ``merge`` return a new state and never change the one they
  were given. That is what lets a window apply an event to several aggregators (and several
  hopping windows) all-or-nothing: if one raises, nothing was changed.

Built-ins read their input with a ``field`` (a dotted path such as ``"data.score"`` over dicts and
attributes, or a callable ``event -> value``) and take an optional ``where=`` predicate. An event
whose value is ``None`` or missing is skipped: not counted, not summed, not averaged. Numbers must
be ``int`` or finite ``float`` (not ``bool``); anything else raises :class:`InvalidEventError`.

Each built-in says what its result is in ``result_type``, in the words of a metric's description
(:data:`VALUE_TYPES`): ``"integer"``, ``"number"``, ``"string"``, ``"boolean"``, ``"any"``, with a
trailing ``?`` when the value may be null. A user aggregator may say so too; without it, ``"any"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, TypeAlias, TypeVar, runtime_checkable

from tables.errors import ConfigError, InvalidEventError
from tables.fields import MISSING, Field, field_label, field_reader

__all__ = [
    "Aggregates",
    "Aggregator",
    "Count",
    "CountDistinct",
    "Last",
    "Max",
    "Mean",
    "MergeableAggregator",
    "Min",
    "Sum",
    "VALUE_TYPES",
    "is_mergeable",
    "result_type",
]

S = TypeVar("S")
R_co = TypeVar("R_co", covariant=True)

#: An optional filter: the aggregator only sees events for which it returns true.
Where: TypeAlias = Callable[[Any], bool] | None
Number: TypeAlias = int | float

#: the JSON types a value may be described with; ``"<type>?"`` when it may also be null
VALUE_TYPES = ("integer", "number", "string", "boolean", "any")


def _check_value_type(name: str, spelled: object, owner: str) -> str:
    if not isinstance(spelled, str) or spelled.removesuffix("?") not in VALUE_TYPES:
        raise ConfigError(name, spelled, f"type must be one of {', '.join(VALUE_TYPES)}, optionally with '?'", kind=owner)
    return spelled


def result_type(aggregator: object) -> str:
    """What ``aggregator``'s result is (its ``result_type``; ``"any"`` when it does not say)."""
    spelled = getattr(aggregator, "result_type", "any")
    return spelled if isinstance(spelled, str) and spelled.removesuffix("?") in VALUE_TYPES else "any"


@runtime_checkable
class Aggregator(Protocol[S, R_co]):
    """Folds a window's events into a JSON-compatible state ``S`` and reports ``R_co``.

    See the module docstring for the two rules every implementation keeps: JSON-compatible
    states, and never mutating a state it was given.
    """

    def initialize(self) -> S:
        """The state of a window with no events."""
        ...

    def agg(self, state: S, event: Any, ts: float) -> S:
        """The state after ``event`` (whose event time is ``ts``, epoch seconds) joins ``state``."""
        ...

    def result(self, state: S) -> R_co:
        """The window's value, computed from its final state."""
        ...


@runtime_checkable
class MergeableAggregator(Aggregator[S, R_co], Protocol[S, R_co]):
    """An aggregator that can also combine two states; session windows need it to merge sessions."""

    def merge(self, a: S, b: S) -> S:
        """One state holding the events of both ``a`` and ``b`` (``a`` is the earlier one)."""
        ...


def is_mergeable(aggregator: Aggregator[Any, Any]) -> bool:
    """Whether ``aggregator`` can serve session windows (an :class:`Aggregates` asks its parts)."""
    if isinstance(aggregator, Aggregates):
        return aggregator.mergeable
    return isinstance(aggregator, MergeableAggregator)


class _Reads:
    """The ``field`` and ``where=`` handling every field-based built-in shares."""

    __slots__ = ("_field", "_read", "_where")

    def __init__(self, field: Field, where: Where = None) -> None:
        owner = type(self).__name__
        self._field = field
        self._read = field_reader(field, owner=owner)
        self._where = _check_where(where, owner)

    def _value(self, event: Any) -> Any:
        """The event's value, or MISSING when it is filtered out, absent or None."""
        if self._where is not None and not self._where(event):
            return MISSING
        value = self._read(event)
        return MISSING if value is None else value

    def _number(self, event: Any) -> Any:
        """Like ``_value``, but a present value must be an int or a finite float."""
        value = self._value(event)
        kind = type(value)
        if value is MISSING or kind is int or (kind is float and math.isfinite(value)):
            return value
        if kind is bool:
            raise InvalidEventError(
                field_label(self._field), value, "a bool; count true values with Count(where=...)"
            )
        if isinstance(value, (int, float)) and math.isfinite(value):
            # A subclass such as IntEnum or numpy.float64: keep the plain number in the state.
            return float(value) if isinstance(value, float) else int(value)
        raise InvalidEventError(field_label(self._field), value, "not a finite number")

    def __repr__(self) -> str:
        where = "" if self._where is None else f", where={self._where!r}"
        return f"{type(self).__name__}({self._field!r}{where})"


class Count:
    """The number of events (that pass ``where``)."""

    result_type: ClassVar[str] = "integer"

    __slots__ = ("_where",)

    def __init__(self, where: Where = None) -> None:
        self._where = _check_where(where, "Count")

    def initialize(self) -> int:
        return 0

    def agg(self, state: int, event: Any, ts: float) -> int:
        if self._where is not None and not self._where(event):
            return state
        return state + 1

    def result(self, state: int) -> int:
        return state

    def merge(self, a: int, b: int) -> int:
        return a + b

    def __repr__(self) -> str:
        return "Count()" if self._where is None else f"Count(where={self._where!r})"


class Sum(_Reads):
    """The sum of a numeric field; 0 for a window without values."""

    result_type: ClassVar[str] = "number"

    __slots__ = ()

    def initialize(self) -> Number:
        return 0

    def agg(self, state: Number, event: Any, ts: float) -> Number:
        value = self._number(event)
        return state if value is MISSING else state + value

    def result(self, state: Number) -> Number:
        return state

    def merge(self, a: Number, b: Number) -> Number:
        return a + b


class Min(_Reads):
    """The smallest value of a numeric field; None for a window without values."""

    result_type: ClassVar[str] = "number?"

    __slots__ = ()

    def initialize(self) -> Number | None:
        return None

    def agg(self, state: Number | None, event: Any, ts: float) -> Number | None:
        value = self._number(event)
        if value is MISSING:
            return state
        return value if state is None or value < state else state

    def result(self, state: Number | None) -> Number | None:
        return state

    def merge(self, a: Number | None, b: Number | None) -> Number | None:
        return b if a is None else a if b is None else min(a, b)


class Max(_Reads):
    """The largest value of a numeric field; None for a window without values."""

    result_type: ClassVar[str] = "number?"

    __slots__ = ()

    def initialize(self) -> Number | None:
        return None

    def agg(self, state: Number | None, event: Any, ts: float) -> Number | None:
        value = self._number(event)
        if value is MISSING:
            return state
        return value if state is None or value > state else state

    def result(self, state: Number | None) -> Number | None:
        return state

    def merge(self, a: Number | None, b: Number | None) -> Number | None:
        return b if a is None else a if b is None else max(a, b)


class Mean(_Reads):
    """The arithmetic mean of a numeric field; None for a window without values.

    State: ``[sum, count]`` (a list, not a tuple, so it survives the JSON round trip unchanged).
    """

    result_type: ClassVar[str] = "number?"

    __slots__ = ()

    def initialize(self) -> list[Number]:
        return [0, 0]

    def agg(self, state: list[Number], event: Any, ts: float) -> list[Number]:
        value = self._number(event)
        if value is MISSING:
            return state
        return [state[0] + value, state[1] + 1]

    def result(self, state: list[Number]) -> float | None:
        total, count = state
        return total / count if count else None

    def merge(self, a: list[Number], b: list[Number]) -> list[Number]:
        return [a[0] + b[0], a[1] + b[1]]


class Last(_Reads):
    """The value of the event with the largest event time; on a tie, the one added later.

    "Latest by event time", not "latest to arrive": out-of-order arrivals do not overwrite a newer
    value. State: None or ``[ts, value]``; the value must itself be JSON-compatible.
    """

    result_type: ClassVar[str] = "any"

    __slots__ = ()

    def initialize(self) -> list[Any] | None:
        return None

    def agg(self, state: list[Any] | None, event: Any, ts: float) -> list[Any] | None:
        value = self._value(event)
        if value is MISSING:
            return state
        if not isinstance(value, (str, int, float, list, dict)):
            raise InvalidEventError(field_label(self._field), value, "not a JSON-compatible value")
        return [ts, value] if state is None or ts >= state[0] else state

    def result(self, state: list[Any] | None) -> Any:
        return None if state is None else state[1]

    def merge(self, a: list[Any] | None, b: list[Any] | None) -> list[Any] | None:
        # Ties go to b, the later of the two merged windows.
        if a is None or (b is not None and b[0] >= a[0]):
            return b
        return a


class CountDistinct(_Reads):
    """The number of distinct values of a field (strings and numbers, compared as Python does).

    State: a dict whose keys encode the values seen, ``"s:<text>"`` for strings and ``"n:<number>"``
    for numbers. JSON objects only have string keys, so the type tag keeps ``"1"`` apart from ``1``,
    and whole floats are written as ints so that ``1 == 1.0`` counts once, as in a Python set.
    Memory grows with the number of distinct values in a window.
    """

    result_type: ClassVar[str] = "integer"

    __slots__ = ()

    def initialize(self) -> dict[str, int]:
        return {}

    def agg(self, state: dict[str, int], event: Any, ts: float) -> dict[str, int]:
        value = self._value(event)
        if value is MISSING:
            return state
        token = self._token(value)
        if token in state:
            return state
        # Copy-on-new-value keeps states immutable (see the module docstring); repeats are free.
        return {**state, token: 1}

    def result(self, state: dict[str, int]) -> int:
        return len(state)

    def merge(self, a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
        return {**a, **b}

    def _token(self, value: Any) -> str:
        if isinstance(value, str):
            return "s:" + value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidEventError(field_label(self._field), value, "not a finite number")
            return f"n:{int(value)}" if value.is_integer() else f"n:{float(value)!r}"
        if isinstance(value, int):
            # bool included, as in a Python set: True == 1.
            return f"n:{int(value)}"
        raise InvalidEventError(field_label(self._field), value, "not a string or a finite number")


class Aggregates:
    """Several named aggregators over the same window, as one aggregator.

    The state is ``{name: state}`` and the result ``{name: result}``. ``finalize``, if given,
    receives that result dict and returns further values derived from it, which are merged into
    the result (a returned name that is already there replaces it); ``derived`` names them with
    their types (``{"completion_rate": "number?"}``), which the metric's description publishes:

    >>> def completion_rate(r):
    ...     done = r["completed"] + r["failed"]
    ...     return {"completion_rate": r["completed"] / done if done else None}
    >>> games = Aggregates(
    ...     {
    ...         "completed": Count(where=lambda e: e["status"] == "completed"),
    ...         "failed": Count(where=lambda e: e["status"] == "failed"),
    ...         "best": Max("score"),
    ...     },
    ...     finalize=completion_rate,
    ...     derived={"completion_rate": "number?"},
    ... )
    >>> state = games.initialize()
    >>> for event in [{"status": "completed", "score": 80}, {"status": "failed"}, {"status": "completed"}]:
    ...     state = games.agg(state, event, ts=0.0)
    >>> games.result(state)
    {'completed': 2, 'failed': 1, 'best': 80, 'completion_rate': 0.6666666666666666}
    """

    __slots__ = ("_derived", "_finalize", "_items", "_mergers", "mergeable", "names")

    def __init__(
        self,
        aggregators: Mapping[str, Aggregator[Any, Any]],
        finalize: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
        derived: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(aggregators, Mapping) or not aggregators:
            raise ConfigError(
                "aggregators",
                aggregators,
                "must be a non-empty dict of name -> aggregator",
                kind="Aggregates",
            )
        for name, aggregator in aggregators.items():
            if not isinstance(name, str) or not name:
                raise ConfigError("aggregators", name, "names must be non-empty strings", kind="Aggregates")
            if not isinstance(aggregator, Aggregator):
                raise ConfigError(
                    name,
                    aggregator,
                    "not an aggregator (needs initialize, agg and result)",
                    kind="Aggregates",
                )
        if finalize is not None and not callable(finalize):
            raise ConfigError("finalize", finalize, "must be a callable or None", kind="Aggregates")
        self._items: tuple[tuple[str, Aggregator[Any, Any]], ...] = tuple(aggregators.items())
        if derived is not None and (not isinstance(derived, Mapping) or finalize is None):
            raise ConfigError("derived", derived, "must be a dict of name -> type, with finalize", kind="Aggregates")
        self._derived = {
            name: _check_value_type(f"derived.{name}", spelled, "Aggregates") for name, spelled in (derived or {}).items()
        }
        self._finalize = finalize
        #: The aggregator names, in the order given; they are the keys of every state and result.
        self.names: tuple[str, ...] = tuple(aggregators)
        #: Whether every part has ``merge``, so that session windows can use this.
        self.mergeable: bool = all(is_mergeable(aggregator) for _, aggregator in self._items)
        self._mergers: tuple[tuple[str, Callable[[Any, Any], Any]], ...] = (
            tuple(
                (name, aggregator.merge)
                for name, aggregator in self._items
                if isinstance(aggregator, MergeableAggregator)
            )
            if self.mergeable
            else ()
        )

    def value_types(self) -> dict[str, str]:
        """Every value's name and type (:data:`VALUE_TYPES`): the aggregators', then ``derived``."""
        types = {name: result_type(aggregator) for name, aggregator in self._items}
        types.update(self._derived)
        return types

    def unmergeable(self) -> list[str]:
        """The names of the parts without ``merge`` (what a session-window error lists)."""
        return [name for name, aggregator in self._items if not is_mergeable(aggregator)]

    def initialize(self) -> dict[str, Any]:
        return {name: aggregator.initialize() for name, aggregator in self._items}

    def agg(self, state: dict[str, Any], event: Any, ts: float) -> dict[str, Any]:
        return {name: aggregator.agg(state[name], event, ts) for name, aggregator in self._items}

    def result(self, state: dict[str, Any]) -> dict[str, Any]:
        results = {name: aggregator.result(state[name]) for name, aggregator in self._items}
        if self._finalize is not None:
            results.update(self._finalize(dict(results)))
        return results

    def merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        if not self.mergeable:
            raise ConfigError(
                "aggregators", self.unmergeable(), "these have no merge(a, b)", kind="Aggregates"
            )
        return {name: merge(a[name], b[name]) for name, merge in self._mergers}

    def __repr__(self) -> str:
        parts = ", ".join(f"{name!r}: {aggregator!r}" for name, aggregator in self._items)
        finalize = "" if self._finalize is None else f", finalize={self._finalize!r}"
        return f"Aggregates({{{parts}}}{finalize})"


def _check_where(where: Where, owner: str) -> Where:
    if where is not None and not callable(where):
        raise ConfigError("where", where, "must be a callable event -> bool, or None", kind=owner)
    return where
