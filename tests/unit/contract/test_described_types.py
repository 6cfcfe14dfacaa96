"""A typed refinement says no more than the metric's description allows, and names the same values.

Readers in other languages and the generic paths (OpenAPI's ``Values.<metric>``, the dashboard's
generic view) know a metric's values from the description its workers publish; the typed models
(``contract/typed/<metric>.py``) may be stricter (``max_level`` an integer where ``Max`` can only
promise a number), never wider: a refinement that admits ``null`` or a string where the
description promises a number would let a Python reader accept what every other reader is told
cannot come, and a value present in one but not the other is a value half the readers miss.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

import pytest

from agents import metric_modules
from contract.registry import MetricDescription, describe
from contract.results import refined_model

#: what a described type admits, in JSON Schema's type names
_ADMITS: Final = {
    "integer": {"integer"},
    "number": {"integer", "number"},
    "string": {"string"},
    "boolean": {"boolean"},
    "any": {"integer", "number", "string", "boolean", "null", "array", "object"},
}


def _admitted(spelled: str) -> set[str]:
    admitted = set(_ADMITS[spelled.removesuffix("?")])
    return admitted | {"null"} if spelled.endswith("?") else admitted


def _types(schema: dict[str, Any], definitions: dict[str, Any]) -> set[str]:
    """The JSON types a (pydantic-generated) property schema admits."""
    if "$ref" in schema:
        return _types(definitions[schema["$ref"].rsplit("/", 1)[1]], definitions)
    if "type" in schema:
        spelled = schema["type"]
        return set(spelled) if isinstance(spelled, list) else {spelled}
    found: set[str] = set()
    for branch in (*schema.get("anyOf", ()), *schema.get("oneOf", ())):
        found |= _types(branch, definitions)
    if not found:
        raise AssertionError(f"a property schema this test cannot read: {schema}")
    return found


def _description(metric: str) -> MetricDescription:
    module = importlib.import_module(f"agents.{metric}")
    return describe(module.define(60, 10))


def _refined(metric: str) -> list[str]:
    return [metric] if refined_model(metric, _description(metric).version) is not None else []


REFINED: Final = [name for metric in metric_modules() for name in _refined(metric)]


def test_the_built_in_metrics_have_refinements_to_check() -> None:
    assert REFINED, "no built-in metric has a typed refinement: this module checks nothing"


@pytest.mark.parametrize("metric", REFINED)
def test_a_refinement_admits_only_what_the_description_does(metric: str) -> None:
    description = _description(metric)
    model = refined_model(metric, description.version)
    assert model is not None
    values = model.model_fields["values"].annotation
    assert isinstance(values, type)
    schema = values.model_json_schema(mode="serialization")  # type: ignore[attr-defined]
    properties: dict[str, Any] = schema["properties"]
    assert sorted(properties) == sorted(description.values), "the refinement and the description name other values"
    wider = {
        name: (sorted(_types(prop, schema.get("$defs", {})) - _admitted(description.values[name])),
               description.values[name])
        for name, prop in properties.items()
        if _types(prop, schema.get("$defs", {})) - _admitted(description.values[name])
    }
    assert not wider, f"the refinement admits types its description does not (extra types, described): {wider}"


@pytest.mark.parametrize(
    ("schema", "described", "admitted"),
    [
        ({"type": "integer"}, "number?", True),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, "number?", True),
        ({"anyOf": [{"type": "number"}, {"type": "null"}]}, "integer?", False),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, "integer", False),
        ({"type": "string"}, "number", False),
        ({"type": "object"}, "any", True),
    ],
)
def test_the_check_itself(schema: dict[str, Any], described: str, admitted: bool) -> None:
    assert (not (_types(schema, {}) - _admitted(described))) is admitted
