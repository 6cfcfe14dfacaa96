"""The committed JSON Schema files: what the models give, valid 2020-12 schemas, and in agreement
with the contract on its own samples (events) and on documents the workers' code writes (results).

The validator is ``jsonschema_rs`` (installed with schemathesis, a test dependency): a full
2020-12 implementation, formats included, unlike the small checker of :mod:`testkit.json_schema`
that the OpenAPI tests use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from agents import engagement, metric_modules, outcomes, progression
from agents.windowed.documents import result_document
from contract.events import InvalidEvents, validate_event
from contract.results import InvalidResult, parse_result
from contract.schemas import documents, main, stale, write
from tables import ClosedWindow, PartitionWindows
from testkit.oracle import expected_results, generate_sessions
from testkit.workers import REPO

from .samples import GAME, INTERACTION, NOW, changed
from .test_events import DATA_CASES, FIELD_CASES

SCHEMAS = REPO / "schemas"
T0 = 1_714_557_600


def validator(name: str) -> Any:
    return jsonschema_rs.validator_for(json.loads((SCHEMAS / name).read_text()), validate_formats=True)


# -- the files are the models' ------------------------------------------------------------------


def test_the_committed_schemas_are_what_the_models_give() -> None:
    assert stale(SCHEMAS) == {}, "schemas/ is stale: run `python -m contract.schemas` from the repository root"


def test_one_values_schema_per_typed_refinement_of_a_metric_module() -> None:
    # Each built-in metric has a refinement; a metric without one is described at run time.
    assert {name for name in documents() if name.startswith("values/")} == {f"values/{m}.json" for m in metric_modules()}


def test_the_result_schema_admits_unknown_fields_and_values() -> None:
    # Compatibility (docs/api.md): a reader validating against result.json keeps working when a
    # worker adds a field or a value; what it requires is the shape.
    result = json.loads((SCHEMAS / "result.json").read_text())
    assert result.get("additionalProperties", True) is not False
    assert result["properties"]["values"]["additionalProperties"] == {"$ref": "#/$defs/JsonValue"}
    for name in (n for n in documents() if n.startswith("values/")):
        assert json.loads((SCHEMAS / name).read_text()).get("additionalProperties", True) is not False, name
    assert json.loads((SCHEMAS / "event.json").read_text()).get("additionalProperties", True) is not False


@pytest.mark.parametrize("name", sorted(documents()))
def test_each_file_is_a_valid_2020_12_schema(name: str) -> None:
    document = json.loads((SCHEMAS / name).read_text())
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema_rs.meta.validate(document)
    # Only JSON Schema's own vocabulary: strict validators (ajv) refuse OpenAPI's discriminator.
    assert '"discriminator"' not in (SCHEMAS / name).read_text()


def test_the_check_names_every_stale_file_and_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert stale(tmp_path) == {}
    (tmp_path / "event.json").write_text("{}\n")
    (tmp_path / "values" / "mastery.json").write_text("{}\n")
    (tmp_path / "result.json").unlink()
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert stale(tmp_path) == {
        "event.json": "out of date: run python -m contract.schemas",
        "result.json": "missing: run python -m contract.schemas",
        "values/mastery.json": "not generated any more: delete it",
    }
    assert "event.json: out of date: run python -m contract.schemas" in capsys.readouterr().err
    write(tmp_path)
    assert main(["--check", "--out", str(tmp_path)]) == 1  # only the stray file is left
    (tmp_path / "values" / "mastery.json").unlink()
    assert main(["--check", "--out", str(tmp_path)]) == 0


# -- events: the schema and the contract agree on the contract's samples ------------------------


def contract_accepts(document: Any) -> bool:
    try:
        validate_event(document, now=NOW)
    except InvalidEvents:
        return False
    return True


def integral_floats_as_ints(value: Any) -> Any:
    """``value`` as JSON Schema sees it: its data model has one number 1 for ``1`` and ``1.0``
    (and so ``"type": "integer"`` admits 1.0), where the contract wants a count written ``1``."""
    if type(value) is float and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: integral_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [integral_floats_as_ints(item) for item in value]
    return value


@pytest.mark.parametrize(("document", "expected"), FIELD_CASES + DATA_CASES)
def test_the_event_schema_agrees_with_the_contract(document: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    fits = validator("event.json").is_valid(document)
    if not expected:
        assert fits, "the schema refuses an event the contract admits"
    elif not contract_accepts(integral_floats_as_ints(document)):
        assert not fits, f"the schema admits an event the contract refuses: {expected}"


@pytest.mark.parametrize(
    ("occurred_at", "valid"),
    [
        ("2024-05-01T10:00:00Z", True),
        ("2024-05-01T12:00:00.250+02:00", True),
        ("2024-05-01t10:00:00z", True),
        ("2024-05-01T10:00:00", False),  # no offset
        ("2024-05-01 10:00:00Z", False),
        ("2024-13-01T10:00:00Z", False),
        (1_714_557_600, False),
    ],
)
def test_the_event_schema_checks_the_event_time_as_rfc_3339(occurred_at: Any, valid: bool) -> None:
    document = changed(INTERACTION, occurred_at=occurred_at)
    assert contract_accepts(document) is valid
    assert validator("event.json").is_valid(document) is valid


def test_the_samples_fit() -> None:
    for document in (INTERACTION, GAME):
        validator("event.json").validate(document)


# -- results: documents as the workers' code writes them ----------------------------------------


def worker_documents() -> list[dict[str, Any]]:
    """Every built-in metric's definition over generated events, through the runtime's own
    ``result_document``: the values of open windows ("final": false), then the closed ones."""
    events = generate_sessions(seed=5, students=4, minutes=5, start_epoch=T0)
    found = []
    for module in (engagement, outcomes, progression):
        windows = PartitionWindows(module.define(60, 0), track_updates=True)
        for event in events:
            windows.add(event, arrived_at=T0)
        found += [result_document(window) for window in windows.take_updates()]
        windows.promise(0, T0 + 3600, next_offset=None)
        closed = windows.close_due()
        assert closed and all(isinstance(window, ClosedWindow) for window in closed)
        found += [result_document(window) for window in closed]
    return found


WORKER_DOCUMENTS = worker_documents()
ORACLE_DOCUMENTS = list(expected_results(generate_sessions(seed=3, students=6, minutes=4, start_epoch=T0)).values())


def test_the_workers_write_every_metric_provisional_and_final() -> None:
    assert {(d["metric"], d["final"]) for d in WORKER_DOCUMENTS} == {(m, f) for m in metric_modules() for f in (True, False)}


@pytest.mark.parametrize("document", WORKER_DOCUMENTS + ORACLE_DOCUMENTS, ids=lambda d: f"{d['metric']}-{d['final']}")
def test_results_fit_the_result_schema_and_their_values_schema(document: dict[str, Any]) -> None:
    wire = json.loads(json.dumps(document))  # as a reader in another language gets it
    parse_result(json.dumps(wire))
    validator("result.json").validate(wire)
    validator(f"values/{wire['metric']}.json").validate(wire["values"])


RESULT = ORACLE_DOCUMENTS[0]


@pytest.mark.parametrize(
    "bad",
    [
        {**RESULT, "metric": "a.b"},
        {**RESULT, "key": {"student_id": "s.42"}},
        {**RESULT, "events": 0},
        {**RESULT, "window": {"start": "yesterday", "end": RESULT["window"]["end"]}},
        {key: value for key, value in RESULT.items() if key != "values"},
        {key: value for key, value in RESULT.items() if key != "final"},
    ],
    ids=["bad-metric-name", "bad-id", "no-events", "bad-time", "no-values", "no-final"],
)
def test_the_result_schema_refuses_what_parse_result_refuses(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidResult):
        parse_result(json.dumps(bad))
    assert not validator("result.json").is_valid(bad)
