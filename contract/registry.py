"""What a running metric says about itself: the description each worker publishes to NATS.

A metric is known to the whole system the moment a worker runs it: at start, the worker writes
its metric's :class:`MetricDescription` to the KV bucket :data:`REGISTRY_BUCKET` under the
metric's name, and every reader (the web process's query API, OpenAPI and dashboard, the results
client and its ``watch()``) learns the metric, its key and its values from there. Nothing else
names a metric in advance, so a metric file loaded by path is served like a built-in one::

    {"name": "hints", "version": 1, "key_fields": ["student_id"],
     "window": {"kind": "tumbling", "size_seconds": 60, "step_seconds": 60},
     "grace_seconds": 10, "values": {"hints": "integer", "activities": "integer"}}

``values`` maps each value's name to its JSON type (``integer``, ``number``, ``string``,
``boolean``, ``any``; with ``?`` when it may be null). The first key field is the one result
subjects and the query API address (``results.<metric>.<first key part>``,
``/v1/metrics/<metric>/<first key part>``); the KV key of a window is ``<metric>``, the key's parts
in ``key_fields`` order, and the window's start, joined by dots.

A metric's versions run side by side, each under its own series (``<metric>_v<version>`` from
version 2, :func:`contract.names.metric_series`): the registry holds each version's description
under its series, and, under ``backfill.<series>``, how far the version has come through the
events that were stored when it first started (:class:`Backfill`). A version is *complete* once
its workers have committed all of those: from then on its finals cover every retained event, and
readers take the newest complete version unless asked for another (:func:`default_version`).

Readers are tolerant (docs/api.md, compatibility): a description with fields this version does not
know parses, the unknown ones ignored, so a newer worker never blinds an older reader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Final, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)

from contract.names import METRIC_NAME_PATTERN, metric_series
from tables import Hopping, MetricDefinition, Session, Tumbling
from tables.errors import StreamsError

__all__ = [
    "BACKFILL_PREFIX",
    "Backfill",
    "InvalidDescription",
    "MetricDescription",
    "MetricVersion",
    "REGISTRY_BUCKET",
    "WindowDescription",
    "default_version",
    "describe",
]

#: the KV bucket of descriptions, one key per metric version's series
REGISTRY_BUCKET: Final = "metric_registry"
#: the registry's keys ``backfill.<series>`` hold each version's :class:`Backfill`
BACKFILL_PREFIX: Final = "backfill"

_Name = Annotated[str, Field(pattern=f"^{METRIC_NAME_PATTERN}$")]


class InvalidDescription(StreamsError, ValueError):
    """Bytes that are not a metric description; the message names the fields."""


class _Tolerant(BaseModel):
    # Unknown fields are ignored, never an error: a reader older than the writer keeps working.
    model_config = ConfigDict(frozen=True, extra="ignore")


class WindowDescription(_Tolerant):
    """The windows: ``tumbling`` (size = step), ``hopping`` (a start every step) or ``session``
    (a window per burst of activity, ``gap_seconds`` apart; no fixed size or step)."""

    kind: str
    size_seconds: PositiveFloat | None = None
    step_seconds: PositiveFloat | None = None
    gap_seconds: PositiveFloat | None = None

    @property
    def start_step(self) -> int | None:
        """Window starts are the multiples of this many whole seconds, or None (session windows,
        or a step that is not whole seconds): the keys of a range are then not computable."""
        step = self.step_seconds
        return int(step) if step is not None and step == int(step) else None


class MetricDescription(_Tolerant):
    """One metric as its workers run it (see the module docstring)."""

    name: _Name
    #: raised when a change is not compatible (docs/api.md, compatibility)
    version: PositiveInt = 1
    key_fields: Annotated[tuple[str, ...], Field(min_length=1)]
    window: WindowDescription
    grace_seconds: NonNegativeFloat = 0
    #: value name -> JSON type; the values a result carries beyond these are kept, not refused
    values: Mapping[str, str] = Field(default_factory=dict)

    @property
    def first_key_field(self) -> str:
        return self.key_fields[0]

    @property
    def series(self) -> str:
        """The token this version goes by in keys, subjects and the registry."""
        return metric_series(self.name, self.version)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def parse(cls, raw: bytes | str) -> MetricDescription:
        """The description in ``raw``; :class:`InvalidDescription` naming what is wrong."""
        return _parse(cls, raw, "a metric description")


class Backfill(_Tolerant):
    """How far a version has come through the events stored when its first worker started.

    ``targets`` maps each partition of the events topic to its end offset at that moment (the
    offset after its last record); the version has caught up with a partition once its group has
    committed that offset. ``remaining`` is the records still to commit, as last counted by one of
    its workers; ``complete`` is set once, when none remain, and never cleared.
    """

    series: str
    started_at: AwareDatetime
    targets: Mapping[int, NonNegativeInt]
    remaining: NonNegativeInt
    complete: bool = False
    completed_at: AwareDatetime | None = None

    @property
    def key(self) -> str:
        return f"{BACKFILL_PREFIX}.{self.series}"

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def parse(cls, raw: bytes | str) -> Backfill:
        """The record in ``raw``; :class:`InvalidDescription` naming what is wrong."""
        return _parse(cls, raw, "a backfill record")

    def counted(self, remaining: int, now: datetime) -> Backfill:
        """This record after a worker counted ``remaining`` records still to commit."""
        if self.complete:
            return self
        done = remaining == 0
        return self.model_copy(update={"remaining": remaining, "complete": done, "completed_at": now if done else None})


class MetricVersion(_Tolerant):
    """One version of a metric as readers see it: its description, and its backfill (None for a
    version that has never recorded one: one started before versions were tracked, complete)."""

    description: MetricDescription
    backfill: Backfill | None = None

    @property
    def complete(self) -> bool:
        return self.backfill is None or self.backfill.complete


def default_version(versions: Sequence[MetricVersion]) -> MetricVersion | None:
    """The version readers take when they name none: the newest complete one, or, while none is
    complete (a new metric still going through the stored events), the newest."""
    if not versions:
        return None
    newest_first = sorted(versions, key=lambda v: v.description.version, reverse=True)
    return next((v for v in newest_first if v.complete), newest_first[0])


_Model = TypeVar("_Model", bound=BaseModel)


def _parse(model: type[_Model], raw: bytes | str, what: str) -> _Model:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or '(value)'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidDescription(f"not {what}: " + "; ".join(problems[:5])) from None


def describe(definition: MetricDefinition) -> MetricDescription:
    """The description of ``definition``, as its workers publish it."""
    window = definition.window
    if isinstance(window, Tumbling):
        size = window.size_us / 1e6
        windows = WindowDescription(kind="tumbling", size_seconds=size, step_seconds=size)
    elif isinstance(window, Hopping):
        windows = WindowDescription(kind="hopping", size_seconds=window.size_us / 1e6, step_seconds=window.step_us / 1e6)
    else:
        assert isinstance(window, Session)
        windows = WindowDescription(kind="session", gap_seconds=window.gap_us / 1e6)
    return MetricDescription(
        name=definition.name,
        version=definition.version,
        key_fields=tuple(definition.key_fields),
        window=windows,
        grace_seconds=definition.grace_us / 1e6,
        values=definition.aggregates.value_types(),
    )
