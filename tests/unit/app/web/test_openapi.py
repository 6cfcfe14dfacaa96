"""The OpenAPI document is well formed (checked by hand: no validator package is installed) and
its schemas accept what the API sends and receives, and refuse what the contract refuses.

That the document lists exactly the application's routes is checked where a running application
is at hand, in ``tests/integration/test_web_app.py``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from app.web.openapi import openapi_document
from contract.events import MAX_BATCH_EVENTS, MAX_DATA_NUMBER, InvalidEvents, validate_event
from testkit.json_schema import KEYWORDS, schema_errors
from testkit.oracle import expected_results, generate_sessions

DOCUMENT = openapi_document()
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
RESULTS = list(expected_results(generate_sessions(seed=2, students=3, minutes=4, start_epoch=1_714_557_600)).values())
EVENT = {
    "event_id": "ev-1",
    "student_id": "s-42",
    "type": "game",
    "name": "level_completed",
    "occurred_at": "2024-05-01T10:00:00Z",
    "game_id": "g-math",
    "data": {"level": 3, "score": 120, "duration_ms": 5400},
}


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def resolve(ref: str) -> Any:
    node: Any = DOCUMENT
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def schema(name: str) -> dict[str, Any]:
    return DOCUMENT["components"]["schemas"][name]


def fits(schema_node: dict[str, Any], value: Any) -> list[str]:
    return schema_errors(schema_node, value, DOCUMENT)


def test_it_is_an_openapi_3_1_document() -> None:
    assert re.fullmatch(r"3\.1\.\d+", DOCUMENT["openapi"])
    assert isinstance(DOCUMENT["info"]["title"], str) and isinstance(DOCUMENT["info"]["version"], str)
    assert set(DOCUMENT) <= {"openapi", "info", "paths", "components", "servers", "security", "tags", "jsonSchemaDialect"}
    json.dumps(DOCUMENT)  # plain JSON all the way down


def test_every_reference_resolves() -> None:
    found = refs(DOCUMENT)
    assert found
    for ref in found:
        assert ref.startswith("#/components/schemas/")
        assert isinstance(resolve(ref), dict), ref


def test_every_schema_is_referenced_or_a_response() -> None:
    used = {ref.rsplit("/", 1)[1] for ref in refs(DOCUMENT)}
    assert set(DOCUMENT["components"]["schemas"]) <= used


@pytest.mark.parametrize(("path", "method", "operation"), operations(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_operation_is_complete(path: str, method: str, operation: dict[str, Any]) -> None:
    assert operation["operationId"] and operation["summary"]
    in_path = set(re.findall(r"{(\w+)}", path))
    declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
    assert declared == in_path
    for parameter in operation.get("parameters", []):
        assert parameter["in"] in {"path", "query", "header", "cookie"}
        assert "schema" in parameter
        if parameter["in"] == "path":
            assert parameter["required"] is True
    names = [(p["name"], p["in"]) for p in operation.get("parameters", [])]
    assert len(names) == len(set(names))
    assert operation["responses"]
    for status, response in operation["responses"].items():
        assert re.fullmatch(r"[1-5]\d\d", status)
        assert response["description"]
        for media in response.get("content", {}).values():
            assert isinstance(media["schema"], dict)
    for requirement in operation.get("security", []):
        assert set(requirement) <= set(DOCUMENT["components"]["securitySchemes"])


def test_operation_ids_are_unique() -> None:
    ids = [operation["operationId"] for _, _, operation in operations()]
    assert len(ids) == len(set(ids))


def test_the_error_statuses_of_ingest() -> None:
    responses = DOCUMENT["paths"]["/v1/events"]["post"]["responses"]
    assert set(responses) == {"202", "400", "401", "408", "413", "415", "422", "503"}
    assert "Retry-After" in responses["503"]["headers"]


def subschemas(node: dict[str, Any]) -> list[dict[str, Any]]:
    """``node`` and every schema inside it (not into references)."""
    found = [node]
    children: list[Any] = [*node.get("properties", {}).values(), *node.get("anyOf", []), *node.get("oneOf", [])]
    children += node.get("allOf", [])
    children += [node[key] for key in ("items", "additionalProperties", "if", "then") if isinstance(node.get(key), dict)]
    for child in children:
        found += subschemas(child)
    return found


def test_every_schema_uses_only_known_keywords() -> None:
    # Catches a generator's own vocabulary leaking out (pydantic writes "ge" for a constraint on
    # a union, which JSON Schema does not know).
    for name, node in DOCUMENT["components"]["schemas"].items():
        for sub in subschemas(node):
            assert set(sub) <= KEYWORDS, (name, set(sub) - KEYWORDS)
    assert len([sub for node in DOCUMENT["components"]["schemas"].values() for sub in subschemas(node)]) > 50


def test_an_event_and_a_batch_fit_the_request_body() -> None:
    body = DOCUMENT["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert fits(body, EVENT) == []
    assert fits(body, {"events": [EVENT, {**EVENT, "type": "interaction", "name": "hint_opened"}]}) == []
    # An object with events is a batch, whatever else it holds (the server ignores the rest).
    assert fits(body, {**EVENT, "events": [EVENT]}) == []
    assert fits(body, {**EVENT, "events": "not a list"}) != []


@pytest.mark.parametrize(
    "bad",
    [
        {**EVENT, "session_id": None},  # optional fields are absent, never null
        {key: value for key, value in EVENT.items() if key != "game_id"},  # game events need it
        {**EVENT, "student_id": "s*1"},
        {**EVENT, "occurred_at": 5},
    ],
)
def test_the_event_schema_refuses_what_the_contract_refuses(bad: dict[str, Any]) -> None:
    assert fits(schema("Event"), bad) != []


def named(type_: str, name: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """EVENT as a ``type_``/``name`` event with ``data`` (None: no data at all)."""
    document = {**EVENT, "type": type_, "name": name, "data": data}
    if type_ != "game":
        del document["game_id"]
    return document if data is not None else {k: v for k, v in document.items() if k != "data"}


def game(name: str, **data: Any) -> dict[str, Any]:
    return named("game", name, data)


BIG = MAX_DATA_NUMBER

# Where the schema states a data rule, schema and contract agree, bound included.
DATA_RULE_CASES = [
    (game("level_completed", level=BIG, score=BIG, duration_ms=BIG), True),
    (game("level_completed", level=1, score=BIG + 1, duration_ms=1), False),
    (game("level_completed", level=1, score=1e308, duration_ms=1), False),
    (game("level_completed", level=1, score=-1, duration_ms=1), False),
    (game("level_completed", level=BIG + 1, score=1, duration_ms=1), False),
    (game("level_completed", level=1, score=1, duration_ms=BIG + 1), False),
    (game("level_completed", level=1, score=1), False),
    (named("game", "level_completed", None), False),
    (game("level_started", level=BIG), True),
    (game("level_started", level=BIG + 1), False),
    (game("level_failed", level=1, duration_ms=1), True),
    (game("level_failed", level=1, duration_ms=1, score=BIG + 1), False),
    (game("game_finished", outcome="win", score=BIG, duration_ms=1), True),
    (game("game_finished", outcome="draw", score=1, duration_ms=1), False),
    (game("game_finished", outcome="loss", score=BIG + 1, duration_ms=1), False),
    (named("engagement", "heartbeat", {"seconds": 3600}), True),
    (named("engagement", "heartbeat", {"seconds": 0}), False),
    (named("engagement", "heartbeat", {"seconds": 3601}), False),
    (named("interaction", "hint_opened", {"correct": 1}), False),
    (named("interaction", "hint_opened", {}), True),
    # Events without rules of their own: a score may be negative there, and is free of the
    # level_completed rules; only the general bound, which the description states, holds.
    (game("achievement_unlocked", score=-BIG, level="gold"), True),
    (named("engagement", "session_started", {"seconds": -5}), True),
]


@pytest.mark.parametrize(("document", "valid"), DATA_RULE_CASES)
def test_the_event_schema_states_the_data_rules_and_their_bounds(document: dict[str, Any], valid: bool) -> None:
    assert (fits(schema("Event"), document) == []) is valid, fits(schema("Event"), document)
    try:
        validate_event(document, now=1_714_557_600.0)
    except InvalidEvents:
        assert not valid
    else:
        assert valid


def test_the_event_schema_describes_the_bound_on_every_number_in_data() -> None:
    # Not expressible per key (data may nest anything); the description says it instead.
    description = schema("Event")["description"]
    assert f">= -{MAX_DATA_NUMBER} and <= {MAX_DATA_NUMBER}" in description
    assert "nested objects and arrays" in description and "data.items.3" in description


def test_the_batch_schema_bounds_its_size() -> None:
    assert fits(schema("EventBatch"), {"events": []}) != []
    assert fits(schema("EventBatch"), {"events": [EVENT] * (MAX_BATCH_EVENTS + 1)}) != []


def test_results_fit_the_windows_and_latest_schemas() -> None:
    assert fits(schema("Windows"), {"windows": RESULTS}) == []
    latest = DOCUMENT["paths"]["/v1/metrics/{metric}/{student_id}/latest"]["get"]["responses"]["200"]
    for result in RESULTS:
        assert fits(latest["content"]["application/json"]["schema"], result) == []
    # Any metric's result fits (the generic result); one without a result's shape does not.
    assert fits(schema("Windows"), {"windows": [{**RESULTS[0], "metric": "hints", "values": {"hints": 3}}]}) == []
    assert fits(schema("Windows"), {"windows": [{**RESULTS[0], "key": {}}]}) != []


def test_answers_fit_their_schemas() -> None:
    assert fits(schema("Accepted"), {"accepted": 3, "duplicates": 1}) == []
    assert fits(schema("ErrorBody"), {"errors": [{"index": -1, "field": "", "message": "x"}]}) == []
    assert fits(schema("Health"), {"status": "ok"}) == []
    assert fits(schema("Health"), {"status": "fine"}) != []


def test_each_call_returns_a_fresh_copy() -> None:
    first = openapi_document()
    first["paths"].clear()
    assert openapi_document()["paths"]
