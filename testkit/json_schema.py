"""A small JSON Schema (2020-12) checker for the keywords the OpenAPI document uses.

No validator package is installed (and none may be added), so this covers what the document's
schemas actually use; an unknown keyword is an error rather than silently ignored, which also
catches schema generators leaking their own vocabulary (``ge`` for ``minimum``).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["KEYWORDS", "schema_errors"]

#: keywords this checker understands; ``format``, titles and the like are annotations only
ANNOTATIONS = frozenset({"title", "description", "default", "format", "examples", "discriminator"})
KEYWORDS = ANNOTATIONS | frozenset({
    "$ref", "type", "properties", "required", "additionalProperties", "items", "enum", "const",
    "pattern", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minItems", "maxItems", "minProperties", "maxProperties", "allOf", "anyOf", "oneOf", "not", "if", "then",
})

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: type(v) is int or (type(v) is float and v.is_integer()),
    "number": lambda v: type(v) in (int, float),
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
}


def schema_errors(schema: Any, value: Any, document: dict[str, Any], path: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (``$ref`` resolved in ``document``); empty when it fits."""
    if schema is True or schema == {}:
        return []
    unknown = set(schema) - KEYWORDS
    if unknown:
        return [f"{path}: schema uses unknown keywords {sorted(unknown)}"]
    if "$ref" in schema:
        return schema_errors(_resolve(document, schema["$ref"]), value, document, path)
    errors: list[str] = []
    kind = schema.get("type")
    kinds = [kind] if isinstance(kind, str) else kind
    if kinds is not None and not any(_TYPES[k](value) for k in kinds):
        return [f"{path}: {value!r:.60} is not of type {kind}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: must be {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: must be one of {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{path}: length out of range")
    if type(value) in (int, float):
        for keyword, fits in (
            ("minimum", lambda bound: value >= bound),
            ("maximum", lambda bound: value <= bound),
            ("exclusiveMinimum", lambda bound: value > bound),
            ("exclusiveMaximum", lambda bound: value < bound),
        ):
            if keyword in schema and not fits(schema[keyword]):
                errors.append(f"{path}: {keyword} {schema[keyword]}")
    if isinstance(value, dict):
        if len(value) < schema.get("minProperties", 0) or len(value) > schema.get("maxProperties", len(value)):
            errors.append(f"{path}: property count out of range")
        errors += _object_errors(schema, value, document, path)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{path}: item count out of range")
        for index, item in enumerate(value):
            errors += schema_errors(schema.get("items", {}), item, document, f"{path}[{index}]")
    for sub in schema.get("allOf", ()):
        errors += schema_errors(sub, value, document, path)
    if "anyOf" in schema and all(schema_errors(s, value, document, path) for s in schema["anyOf"]):
        errors.append(f"{path}: fits none of anyOf")
    if "oneOf" in schema:
        fitting = sum(1 for s in schema["oneOf"] if not schema_errors(s, value, document, path))
        if fitting != 1:
            errors.append(f"{path}: fits {fitting} of oneOf, not exactly one")
    if "not" in schema and not schema_errors(schema["not"], value, document, path):
        errors.append(f"{path}: fits the schema it must not")
    if "if" in schema and not schema_errors(schema["if"], value, document, path):
        errors += schema_errors(schema.get("then", {}), value, document, path)
    return errors


def _object_errors(schema: dict[str, Any], value: dict[str, Any], document: dict[str, Any], path: str) -> list[str]:
    errors = [f"{path}: {name!r} is required" for name in schema.get("required", ()) if name not in value]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            errors += schema_errors(properties[name], item, document, f"{path}.{name}")
        elif extra is False:
            errors.append(f"{path}: {name!r} is not allowed")
        elif isinstance(extra, dict):
            errors += schema_errors(extra, item, document, f"{path}.{name}")
    return errors


def _resolve(document: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise AssertionError(f"only local references are expected, got {ref}")
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node
