"""What one windowed metric is: which events, grouped by what key, in which windows, aggregated how.

A data engineer writes one :class:`MetricDefinition` per metric; everything about it is validated
here, at definition time, so a mistake (a zero window, a negative grace, session windows over an
aggregator that cannot merge) stops the process at start-up with a :class:`ConfigError` naming the
argument, rather than surfacing on the first event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from tables.aggregators import Aggregates
from tables.errors import ConfigError, InvalidEventError
from tables.event_time import event_time_reader
from tables.fields import MISSING, field_reader
from tables.micros import Duration, duration_micros
from tables.storage_keys import SAFE_NAME
from tables.windows import Hopping, Session, Tumbling, Window

__all__ = ["KeyFunction", "MetricDefinition"]

#: ``event -> key``: one non-empty string per name in ``key_fields``.
KeyFunction = Callable[[Any], tuple[str, ...]]

_OWNER = "MetricDefinition"


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricDefinition:
    """One windowed metric.

    - ``name``: identifies the metric in results and storage keys; letters, digits, ``_``, ``-``.
    - ``key_fields``: the names of the key's parts, e.g. ``("student_id", "game_id")``.
    - ``key``: ``event -> tuple[str, ...]`` with one part per key field. By default each key field
      is read from the event as a dotted path and must hold a non-empty string or an int (which
      becomes its decimal string). A custom ``key`` must return such a tuple; exceptions it raises
      are the caller's own and pass through unchanged.
    - ``time_field``: the event field (dotted path) holding its event time; see
      :mod:`tables.event_time` for the accepted forms.
    - ``window``: :class:`Tumbling`, :class:`Hopping` or :class:`Session`.
    - ``grace``: how long (``timedelta`` or seconds, ``>= 0``) a window stays open after the
      watermark passes its end, for stragglers.
    - ``aggregates``: the named aggregates reported per window.
    - ``where``: events for which it returns false are ignored entirely: not validated, not
      counted, not late.
    - ``id_field``: the event field (dotted path) holding its id, a non-empty string: an event
      whose id a window has already counted is counted there once, however late the copy comes
      while the window is open (a window remembers the ids it counted). None: no such check.
    - ``version``: the version of the metric's results (an int >= 1, published in its description).
      Adding a value is compatible and keeps it; removing or renaming a value or a key field, or
      changing the window, is not: raise it (docs/api.md, compatibility).

    Events may be dicts or objects with attributes.
    """

    name: str
    key_fields: Sequence[str]
    time_field: str
    window: Window
    aggregates: Aggregates
    grace: Duration = 0
    key: KeyFunction | None = None
    where: Callable[[Any], bool] | None = None
    id_field: str | None = None
    version: int = 1
    grace_us: int = field(init=False, repr=False, compare=False)
    _read_key: KeyFunction = field(init=False, repr=False, compare=False)
    _read_time_us: Callable[[Any], int] = field(init=False, repr=False, compare=False)
    _read_id: Callable[[Any], str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or SAFE_NAME.fullmatch(self.name) is None:
            raise ConfigError("name", self.name, "must be non-empty letters, digits, '_' or '-'", kind=_OWNER)
        key_fields = _check_key_fields(self.key_fields)
        if not isinstance(self.window, (Tumbling, Hopping, Session)):
            raise ConfigError("window", self.window, "must be Tumbling, Hopping or Session", kind=_OWNER)
        if not isinstance(self.aggregates, Aggregates):
            raise ConfigError("aggregates", self.aggregates, "must be an Aggregates({...})", kind=_OWNER)
        if isinstance(self.window, Session) and not self.aggregates.mergeable:
            raise ConfigError(
                "aggregates",
                self.aggregates.unmergeable(),
                "session windows merge sessions, so every aggregator needs merge(a, b)",
                kind=_OWNER,
            )
        for argument in ("key", "where"):
            value = getattr(self, argument)
            if value is not None and not callable(value):
                raise ConfigError(argument, value, "must be a callable or None", kind=_OWNER)
        grace_us = duration_micros(self.grace, owner=_OWNER, field="grace", allow_zero=True)
        if not isinstance(self.time_field, str):
            raise ConfigError(
                "time_field", self.time_field, "must be the name (dotted path) of a field", kind=_OWNER
            )
        read_time_us = event_time_reader(self.time_field, owner=_OWNER)
        read_key = _default_key(key_fields) if self.key is None else _checked_key(self.key, key_fields)
        if self.id_field is not None and not isinstance(self.id_field, str):
            raise ConfigError("id_field", self.id_field, "must be the name (dotted path) of a field or None", kind=_OWNER)
        read_id = None if self.id_field is None else _id_reader(self.id_field)
        if type(self.version) is not int or self.version < 1:
            raise ConfigError("version", self.version, "must be an int >= 1", kind=_OWNER)
        # A frozen dataclass can only be completed here, through object.__setattr__.
        object.__setattr__(self, "key_fields", key_fields)
        object.__setattr__(self, "grace", timedelta(microseconds=grace_us))
        object.__setattr__(self, "grace_us", grace_us)
        object.__setattr__(self, "_read_key", read_key)
        object.__setattr__(self, "_read_time_us", read_time_us)
        object.__setattr__(self, "_read_id", read_id)

    def read_key(self, event: Any) -> tuple[str, ...]:
        """The event's key; :class:`InvalidEventError` if a key field is missing or unusable."""
        return self._read_key(event)

    def read_time_us(self, event: Any) -> int:
        """The event's time in epoch microseconds; :class:`InvalidEventError` if missing or bad."""
        return self._read_time_us(event)

    @property
    def read_id(self) -> Callable[[Any], str] | None:
        """``event -> its id`` when the metric has an ``id_field`` (:class:`InvalidEventError` if
        missing or not a non-empty string), else None."""
        return self._read_id


def _check_key_fields(key_fields: Any) -> tuple[str, ...]:
    # A bare string is a sequence too: ("student_id") without the comma is the usual slip.
    if isinstance(key_fields, str) or not isinstance(key_fields, Sequence):
        raise ConfigError(
            "key_fields", key_fields, "must be a tuple of field names, e.g. ('student_id',)", kind=_OWNER
        )
    names = tuple(key_fields)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ConfigError(
            "key_fields", key_fields, "must name at least one field, each a non-empty string", kind=_OWNER
        )
    if len(set(names)) != len(names):
        raise ConfigError("key_fields", key_fields, "names must be unique", kind=_OWNER)
    return names


def _default_key(key_fields: tuple[str, ...]) -> KeyFunction:
    readers = tuple((name, field_reader(name, owner=_OWNER, argument="key_fields")) for name in key_fields)
    if len(readers) == 1:
        # Most metrics are keyed by one field (the student): a key of a string that is one,
        # without building a generator per event.
        ((only, read_only),) = readers

        def read_one(event: Any) -> tuple[str, ...]:
            value = read_only(event)
            if type(value) is str and value:
                return (value,)
            return (_key_part(only, value),)

        return read_one

    def read_key(event: Any) -> tuple[str, ...]:
        return tuple(_key_part(name, read(event)) for name, read in readers)

    return read_key


def _key_part(name: str, value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))
    problem = (
        "the event has no such field"
        if value is MISSING
        else "a key part must be a non-empty string or an int"
    )
    raise InvalidEventError(name, value, problem)


def _id_reader(id_field: str) -> Callable[[Any], str]:
    read = field_reader(id_field, owner=_OWNER, argument="id_field")

    def read_id(event: Any) -> str:
        value = read(event)
        if isinstance(value, str) and value:
            return value
        problem = "the event has no such field" if value is MISSING else "an id must be a non-empty string"
        raise InvalidEventError(id_field, value, problem)

    return read_id


def _checked_key(key: KeyFunction, key_fields: tuple[str, ...]) -> KeyFunction:
    size = len(key_fields)

    def read_key(event: Any) -> tuple[str, ...]:
        parts = key(event)
        if type(parts) is tuple and len(parts) == size and all(type(part) is str and part for part in parts):
            return parts
        raise InvalidEventError(
            "key", parts, f"the key function must return a tuple of {size} non-empty strings for {key_fields}"
        )

    return read_key
