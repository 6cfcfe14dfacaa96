"""An open window as the changelog stores it, and back.

A window's value is ``{"end_us": int, "events": int, "state": <the Aggregates state>}``, plus
``"ids": [...]`` (sorted, so equal state gives equal bytes) when the metric has an ``id_field``;
its key is :func:`tables.storage_keys.window_key`. Decoding checks everything a stored value
could get wrong, so a changelog written by another definition of the metric is refused with the
key named rather than loaded into windows that do not fit it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from tables.errors import StateError
from tables.metric import MetricDefinition
from tables.schedule import OpenWindow
from tables.storage_keys import parse_window_key
from tables.windows import Session

__all__ = ["decode_window", "encode_window", "stored_end_us"]

#: what a stored window's value may hold ("ids" only with an id_field)
_FIELDS: Final = frozenset({"end_us", "events", "state", "ids"})
_REQUIRED: Final = frozenset({"end_us", "events", "state"})


def encode_window(window: OpenWindow) -> dict[str, Any]:
    """The JSON-compatible value of ``window`` (its state is shared, not copied: never modify it)."""
    value: dict[str, Any] = {"end_us": window.end_us, "events": window.events, "state": window.state}
    if window.ids is not None:
        value["ids"] = sorted(window.ids)
    return value


def stored_end_us(value: Any) -> int | None:
    """The end of the window a stored value describes; None for a value that is not a window's
    (the watermark's, a deletion)."""
    if isinstance(value, Mapping):
        end_us = value.get("end_us")
        if type(end_us) is int:
            return end_us
    return None


def decode_window(definition: MetricDefinition, storage_key: str, value: Mapping[str, Any]) -> OpenWindow:
    """The open window ``value`` describes, stored under ``storage_key`` by ``definition``'s metric.

    Raises :class:`StateError` naming the key when the value is not one this definition writes.
    """
    key, start_us = parse_window_key(definition.name, storage_key, len(definition.key_fields))
    if not isinstance(value, Mapping) or not _REQUIRED <= set(value) <= _FIELDS:
        raise StateError(storage_key, 'expected {"end_us": int, "events": int, "state": {...}, "ids": [...]}')
    end_us, events, state = value["end_us"], value["events"], value["state"]
    stored_ids = value.get("ids")
    if stored_ids is not None and (
        not isinstance(stored_ids, list) or not all(isinstance(i, str) and i for i in stored_ids)
    ):
        raise StateError(storage_key, f"ids must be a list of non-empty strings, got {stored_ids!r}")
    if type(end_us) is not int or type(events) is not int or events < 1:
        raise StateError(storage_key, f"end_us must be an int and events an int >= 1, got {end_us!r}, {events!r}")
    names = definition.aggregates.names
    if not isinstance(state, dict) or set(state) != set(names):
        found = sorted(state) if isinstance(state, dict) else state
        raise StateError(storage_key, f"stored aggregates {found!r} differ from the metric's {sorted(names)!r}")
    window = definition.window
    if isinstance(window, Session):
        fits = end_us - start_us >= window.gap_us
    else:
        fits = window.ranges_us(start_us)[-1] == (start_us, end_us)
    if not fits:
        raise StateError(
            storage_key, f"window [{start_us}, {end_us}) does not fit {window!r}; was the window changed?"
        )
    # A window stored before the metric had an id_field starts remembering ids from now on.
    ids = None if definition.id_field is None else set(stored_ids or ())
    return OpenWindow(key, start_us, end_us, events, state, stored=True, ids=ids)
