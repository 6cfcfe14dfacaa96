"""The result of one window: the public contract of the KV values and result messages.

The same JSON is the value of ``metrics`` KV key ``<metric>.<key parts>.<start>`` and the payload
published on ``results.<metric>.<first key part>``, for every metric::

    {"metric": "hints", "key": {"student_id": "s-42"},
     "window": {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T10:01:00Z"},
     "final": true, "events": 3, "values": {"hints": 3, "activities": 2}}

From a metric's version 2 on, the document says which version computed it (``"version": 2``), and
is stored and published under that version's series (``<metric>_v2``, :func:`contract.names.metric_series`);
a document without ``version`` is version 1's.

``final`` is true for a closed window. With ``METRICS_UPDATE_SECONDS`` the KV key of a window still
open holds its value so far, ``"final": false`` (never published on a result subject), until the
final value replaces it for good; the models take both.

:class:`MetricResult` reads any metric's result: ``values`` is an open mapping of JSON values.
A metric may add typed models of its values as an optional refinement, in a module of
:mod:`contract.typed` named after it; :func:`parse_result` returns the refined model where there is
one and the document fits it, the generic one otherwise. Readers are tolerant (docs/api.md,
compatibility): a field or a value this version does not know is ignored (fields) or kept
(values), never an error, so a worker that adds one breaks no deployed reader. What a result must
have is its shape: the fields below, a key of ids, a window that ends after it starts.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from typing import Annotated, Any, Final, Generic, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PositiveInt,
    ValidationError,
    model_validator,
)

from contract.names import Id, is_id, metric_series, metrics_key, result_subject
from tables.errors import StreamsError

__all__ = [
    "InvalidResult",
    "MetricResult",
    "Result",
    "ResultWindow",
    "TypedValues",
    "parse_result",
    "refined_model",
]

#: where the optional typed refinements live: ``contract.typed.<metric>`` defines ``RESULT``
_TYPED_PACKAGE: Final = "contract.typed"


class InvalidResult(StreamsError, ValueError):
    """Bytes that are not a result of the contract; ``problems`` lists ``field: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("not a metric result: " + "; ".join(problems[:5]))


class _Tolerant(BaseModel):
    # Unknown fields are ignored, never refused: a writer newer than the reader adds them.
    model_config = ConfigDict(frozen=True, extra="ignore")


class ResultWindow(_Tolerant):
    """``[start, end)`` in UTC, whole seconds."""

    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> ResultWindow:
        if self.end <= self.start:
            raise ValueError("window end must be after its start")
        return self


class TypedValues(BaseModel):
    """The base of a metric's typed values: values it does not name are kept (``model_extra``),
    never refused."""

    model_config = ConfigDict(frozen=True, extra="allow")


V = TypeVar("V")


class Result(_Tolerant, Generic[V]):
    """One window's result, its ``values`` of type ``V`` (a mapping, or a metric's typed model)."""

    metric: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    #: the metric's version that computed it (absent from version 1's documents)
    version: PositiveInt = 1
    #: the key's parts, by field name, in the metric's key_fields order (the first one: student_id)
    key: Annotated[dict[str, Id], Field(min_length=1)]
    window: ResultWindow
    #: False: the current value of a window still open (KV only), replaced by the final one
    final: bool
    #: events counted in the window (a window without any has no result)
    events: PositiveInt
    values: V

    @property
    def key_parts(self) -> tuple[str, ...]:
        return tuple(self.key.values())

    @property
    def student_id(self) -> str:
        """The key's first part (``student_id`` for every metric of the project)."""
        return self.key_parts[0]

    @property
    def window_start(self) -> int:
        """The window start in epoch seconds, as it appears in the KV key."""
        return int(self.window.start.timestamp())

    @property
    def series(self) -> str:
        """The token its version goes by in keys and subjects (the metric's name for version 1)."""
        return metric_series(self.metric, self.version)

    @property
    def kv_key(self) -> str:
        """This result's key in the ``metrics`` bucket."""
        return metrics_key(self.series, self.key_parts, self.window_start)

    @property
    def subject(self) -> str:
        """The subject the result is published on."""
        return result_subject(self.series, self.student_id)

    def to_json_bytes(self) -> bytes:
        """Compact JSON with window bounds written ``YYYY-MM-DDTHH:MM:SSZ`` (``version`` left out
        for version 1, as its workers write it)."""
        return self.model_dump_json(exclude={"version"} if self.version == 1 else None).encode()


class MetricResult(Result[dict[str, JsonValue]]):
    """Any metric's result: ``values`` maps each value's name to its JSON value."""


@functools.cache
def refined_model(metric: str, version: int = 1) -> type[Result[Any]] | None:
    """The typed result model of ``metric``'s ``version`` (``contract.typed.<metric>.RESULT``,
    which refines the version the module's ``VERSION`` says, 1 when it says none), or None."""
    if not is_id(metric) or "-" in metric:
        return None  # not a module name; such a metric has no refinement
    name = f"{_TYPED_PACKAGE}.{metric}"
    if importlib.util.find_spec(name) is None:
        return None
    module = importlib.import_module(name)
    if getattr(module, "VERSION", 1) != version:
        return None  # another version's values may have another shape
    model: type[Result[Any]] = module.RESULT
    return model


def parse_result(raw: bytes | str) -> Result[Any]:
    """Parse one result value, of any metric: the metric's typed model where it has one and the
    document fits it, else :class:`MetricResult`. :class:`InvalidResult` names each problem of a
    document that does not have a result's shape."""
    try:
        result = MetricResult.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidResult(_problems(exc)) from None
    model = refined_model(result.metric, result.version)
    if model is None:
        return result
    try:
        return model.model_validate(result.model_dump())
    except ValidationError:
        # A value of another shape than this reader's refinement knows (a newer version of the
        # metric): the generic result still carries it, and a reader must never go quiet.
        return result


def _problems(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(part) for part in error['loc']) or '(value)'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    ]

