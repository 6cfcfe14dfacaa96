"""Reading a named value out of an event: a dotted path over dicts and attributes, or a callable.

Events reach ``tables`` as decoded JSON (dicts) or as objects (faust records, dataclasses), so one
path such as ``"data.score"`` must work on both: each step looks the name up in a mapping, and on
anything else reads the attribute. An absent step yields :data:`MISSING` rather than raising, so
each caller decides what absence means (aggregators skip the event; the time field rejects it).

The path is split once, when the reader is built, not on every event.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

from tables.errors import ConfigError

__all__ = ["Field", "MISSING", "Reader", "field_label", "field_reader"]

#: How a caller names a value in an event: a dotted path (``"data.score"``) or ``event -> value``.
Field: TypeAlias = str | Callable[[Any], Any]
#: A compiled :data:`Field`: ``event -> value``, or :data:`MISSING` when a path step is absent.
Reader: TypeAlias = Callable[[Any], Any]

# Any non-empty names separated by single dots: dict keys such as "student-id" are allowed.
_PATH: Final = re.compile(r"[^.]+(?:\.[^.]+)*")


class _Missing:
    """The type of :data:`MISSING`; its repr is what error messages show for an absent field."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


#: Returned by a :data:`Reader` when the event has no such field (distinct from a ``None`` value).
MISSING: Final = _Missing()


def field_reader(field: Field, *, owner: str, argument: str = "field") -> Reader:
    """Compile ``field`` into a :data:`Reader`; ``owner``/``argument`` name it in a ConfigError.

    A callable is returned as it is: it is the caller's own reader.
    """
    if callable(field):
        return field
    if not isinstance(field, str) or _PATH.fullmatch(field) is None:
        raise ConfigError(
            argument, field, "must be a callable or a dotted path like 'data.score'", kind=owner
        )
    parts = tuple(field.split("."))
    if len(parts) == 1:
        name = parts[0]

        def read_name(event: Any) -> Any:
            # Decoded JSON is plain dicts: read those here, without _step's call (per event,
            # per field read).
            if type(event) is dict:
                return event.get(name, MISSING)
            return _step(event, name)

        return read_name

    def read_path(event: Any) -> Any:
        value = event
        for name in parts:
            value = _step(value, name)
            if value is MISSING:
                break
        return value

    return read_path


def field_label(field: Field) -> str:
    """How error messages name a field: the path itself, or the callable's name."""
    if isinstance(field, str):
        return field
    return getattr(field, "__name__", repr(field))


def _step(value: Any, name: str) -> Any:
    # The exact-type check first: decoded JSON is plain dicts, and it is cheaper than isinstance
    # against the Mapping ABC on the per-event path.
    if type(value) is dict or isinstance(value, Mapping):
        return value.get(name, MISSING)
    return getattr(value, name, MISSING)
