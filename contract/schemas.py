"""The contract as JSON Schema (2020-12), for clients in any language: the files of ``schemas/``.

Run from the repository root::

    python -m contract.schemas            # (re)write schemas/ from the models
    python -m contract.schemas --check    # exit 1, naming what differs, when schemas/ is stale

- ``event.json``            one ingest event (:class:`contract.events.Event`)
- ``result.json``           one window's result, of any metric: the value of a ``metrics`` KV key
                            and the payload of a result message (:data:`contract.results.MetricResult`)
- ``values/<metric>.json``  the ``values`` of one metric's results, for the metrics that have a
                            typed refinement (:mod:`contract.typed`); the others' values are
                            described by the metric registry (:mod:`contract.registry`) at run time

Everything is generated from the pydantic models, as the web process's OpenAPI document is, and
:func:`event_schema` states what the model's own schema says less precisely than the contract
(for both). A test regenerates the files in memory and compares them with the committed ones.
"""

from __future__ import annotations

import argparse
import copy
import json
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

import contract.typed
from contract.events import MAX_DATA_BYTES, MAX_DATA_NUMBER, Event
from contract.results import MetricResult, refined_model

__all__ = ["DIALECT", "documents", "event_schema", "main", "stale", "write"]

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

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

_RESULT_DESCRIPTION: Final = (
    "One window's result: the value of a key of the `metrics` KV bucket "
    "(`<metric>.<key parts>.<window_start>`) and the payload of a message on "
    "`results.<metric>.<student_id>`. `final` is false only in KV, for a window still open; its "
    "final value replaces it. A window's `end` is after its `start`; times are UTC. Readers "
    "ignore fields they do not know and keep values they do not know (docs/api.md, compatibility)."
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


def _values_models() -> dict[str, type[BaseModel]]:
    """metric -> the model of its values, for each typed refinement of :mod:`contract.typed`."""
    found: dict[str, type[BaseModel]] = {}
    for info in pkgutil.iter_modules(contract.typed.__path__):
        model = refined_model(info.name)
        if model is None:
            continue
        values: object = model.model_fields["values"].annotation
        if isinstance(values, type) and issubclass(values, BaseModel):
            found[info.name] = values
    return dict(sorted(found.items()))


def _standalone(schema: dict[str, Any], title: str, description: str | None = None) -> dict[str, Any]:
    head: dict[str, Any] = {"$schema": DIALECT, "title": title}
    if description is not None:
        head["description"] = description
    return {**head, **{key: value for key, value in schema.items() if key not in head}}


def documents() -> dict[str, dict[str, Any]]:
    """Every file of ``schemas/``: its path there -> its JSON Schema."""
    event = event_schema(Event.model_json_schema(mode="validation"))
    result = MetricResult.model_json_schema(mode="serialization")
    found = {
        "event.json": _standalone(event, "Event"),
        "result.json": _standalone(result, "MetricResult", _RESULT_DESCRIPTION),
    }
    for metric, model in _values_models().items():
        found[f"values/{metric}.json"] = _standalone(
            model.model_json_schema(mode="serialization"), model.__name__, f"The values of one {metric} result."
        )
    return found


def _text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write(directory: Path) -> list[Path]:
    """Write every file under ``directory``; returns the paths written."""
    written = []
    for name, document in documents().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_text(document), encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path) -> dict[str, str]:
    """The files under ``directory`` that are not what the models give, each with why; empty when
    it is up to date."""
    wanted = {name: _text(document) for name, document in documents().items()}
    present = {path.relative_to(directory).as_posix() for path in directory.rglob("*.json")}
    found = {name: "not generated any more: delete it" for name in present - set(wanted)}
    for name, text in wanted.items():
        if name not in present:
            found[name] = "missing: run python -m contract.schemas"
        elif (directory / name).read_text(encoding="utf-8") != text:
            found[name] = "out of date: run python -m contract.schemas"
    return dict(sorted(found.items()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m contract.schemas", description="Write the contract's JSON Schema files."
    )
    parser.add_argument("--out", type=Path, default=Path("schemas"), help="the directory (default: schemas)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when anything differs")
    args = parser.parse_args(argv)
    if args.check:
        differing = stale(args.out)
        for name, why in differing.items():
            print(f"{args.out / name}: {why}", file=sys.stderr)
        return 1 if differing else 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
