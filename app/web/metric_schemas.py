"""The OpenAPI document as the running metrics make it: their names and their values' schemas.

The document's static part (:mod:`app.web.openapi`) names no metric; each request for it adds the
metrics the registry lists at that moment, so a metric started after the web process is in the
next document served, with no restart.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from contract.registry import MetricDescription

__all__ = ["VALUES_SCHEMA", "with_metrics"]

#: the component name of a running metric's values, by metric name
VALUES_SCHEMA: Final = "Values.{metric}"
_JSON_TYPES: Final = frozenset({"integer", "number", "string", "boolean"})


def with_metrics(document: dict[str, Any], metrics: Mapping[str, MetricDescription]) -> dict[str, Any]:
    """``document`` as the running metrics make it: the ``metric`` path parameter lists their
    names, and each metric's values get a schema (``Values.<metric>``) from its description. The
    schemas say what the description says, no more: a value a result carries beyond it is kept."""
    if not metrics:
        return document
    document = copy.deepcopy(document)
    for path in document["paths"].values():
        for operation in path.values():
            for parameter in operation.get("parameters", ()):
                if parameter["name"] == "metric" and parameter["in"] == "path":
                    parameter["schema"]["enum"] = sorted(metrics)
    schemas = document["components"]["schemas"]
    for name, description in metrics.items():
        schemas[VALUES_SCHEMA.format(metric=name)] = {
            "type": "object",
            "description": f"The values of {name} (version {description.version}); others may be added",
            "properties": {value: _value_schema(spelled) for value, spelled in description.values.items()},
        }
    return document


def _value_schema(spelled: str) -> dict[str, Any]:
    base = spelled.removesuffix("?")
    if base not in _JSON_TYPES:
        return {}  # "any", or a type a newer worker names: no constraint
    return {"type": [base, "null"]} if spelled.endswith("?") else {"type": base}
