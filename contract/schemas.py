"""The contract as JSON Schema (2020-12): what a model's generated schema says less precisely.

:func:`event_schema` states the rules of an event that pydantic's schema of
:class:`~contract.events.Event` leaves out; the web process's OpenAPI document uses it.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from contract.events import MAX_DATA_BYTES, MAX_DATA_NUMBER

__all__ = ["event_schema"]

_COUNT: Final = {"type": "integer", "minimum": 0, "maximum": MAX_DATA_NUMBER}
_AMOUNT: Final = {"type": "number", "minimum": 0, "maximum": MAX_DATA_NUMBER}

# (type, name or None for every name) -> (the rules of keys in data, the keys it must have): the
# data rules of contract.events, which the description also states in words.
_DATA_RULES: Final[dict[tuple[str, str | None], tuple[dict[str, Any], list[str]]]] = {
    ("game", "level_started"): ({"level": _COUNT}, ["level"]),
    ("game", "level_completed"): (
        {"level": _COUNT, "score": _AMOUNT, "duration_ms": _COUNT}, ["level", "score", "duration_ms"]
    ),
    ("game", "level_failed"): ({"level": _COUNT, "duration_ms": _COUNT, "score": _AMOUNT}, ["level", "duration_ms"]),
    ("game", "game_finished"): (
        {"outcome": {"type": "string", "enum": ["win", "loss", "abandon"]}, "score": _AMOUNT, "duration_ms": _COUNT},
        ["outcome", "score", "duration_ms"],
    ),
    ("engagement", "heartbeat"): ({"seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600}}, ["seconds"]),
    ("interaction", None): ({"correct": {"type": "boolean"}}, []),
}

_EVENT_DESCRIPTION: Final = (
    "One event. Optional fields are left out, never null. `data` is at most "
    f"{MAX_DATA_BYTES} bytes as compact JSON, and some events require keys in it: "
    "game/level_started: level; game/level_completed: level, score, duration_ms; "
    "game/level_failed: level, duration_ms (score optional); game/game_finished: outcome, "
    "score, duration_ms; engagement/heartbeat: seconds (0 < seconds <= 3600); "
    "interaction/*: correct optional (boolean); level and duration_ms are integers and "
    f"score a number, each >= 0 and <= {MAX_DATA_NUMBER}. Every other number anywhere in "
    f"`data`, in nested objects and arrays too, must be finite and >= -{MAX_DATA_NUMBER} and "
    f"<= {MAX_DATA_NUMBER} (2**53, what a double holds exactly); one out of range is refused "
    "at its dotted path, e.g. data.items.3 for the fourth element of the array items. "
    "`occurred_at` may be at most 5 minutes ahead of the server's clock."
)

def _data_rule(type_: str, name: str | None, keys: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """``if`` the event is of ``type_`` (and ``name``) ``then`` its data holds ``keys``."""
    condition: dict[str, Any] = {"properties": {"type": {"const": type_}}, "required": ["type"]}
    if name is not None:
        condition["properties"]["name"] = {"const": name}
        condition["required"].append("name")
    data: dict[str, Any] = {"properties": copy.deepcopy(keys)}
    if required:
        data["required"] = required
    # An absent data is {} to the contract, so a data with required keys must be there.
    then: dict[str, Any] = {"properties": {"data": data}}
    if required:
        then["required"] = ["data"]
    return {"if": condition, "then": then}


def event_schema(generated: dict[str, Any]) -> dict[str, Any]:
    """The contract's schema of an event, from the one pydantic generates for :class:`Event`.

    Where the generated one says less than the contract: ``occurred_at`` is parsed by a custom
    validator; optional fields are absent rather than ``null``; ``game_id`` is required for game
    events; some events require keys in ``data``, within bounds.
    """
    schema = copy.deepcopy(generated)
    schema["description"] = _EVENT_DESCRIPTION
    properties = schema["properties"]
    for name, prop in properties.items():
        options = prop.get("anyOf")
        if options and {"type": "null"} in options:
            (kept,) = [option for option in options if option != {"type": "null"}]
            properties[name] = {**kept, "title": prop.get("title", name)}
    properties["occurred_at"] = {
        "title": "Occurred At",
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 with a UTC offset; the event time",
    }
    schema["if"] = {"properties": {"type": {"const": "game"}}, "required": ["type"]}
    schema["then"] = {"required": ["game_id"]}
    # One condition per event with data rules; allOf because a schema holds a single if/then.
    schema["allOf"] = [_data_rule(type_, name, *rules) for (type_, name), rules in _DATA_RULES.items()]
    return schema
