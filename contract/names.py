"""The names of the learning contract: ids, metrics, the events topic, subjects and KV keys.

Other teams code against these names (docs/api.md), so they are spelled exactly as the contract
says, without the deployment prefix that faust's own subjects carry::

    events.<type>.<student_id>          any client publishes an event here (core or JetStream)
    deadletter.invalid                  events that failed validation, the reason in a header
    deadletter.late.<metric>            events that arrived after their window closed
    deadletter.invalid.<metric>         events a metric could not read
    results.<metric>.<student_id>       a window's result, published when it closes
    KV bucket "metrics"                 progression.<student_id>.<window_start>
                                        engagement.<student_id>.<window_start>
                                        outcomes.<student_id>.<game_id>.<window_start>

Ids become subject tokens and key parts, so :func:`require_id` admits only the contract's id
characters: an id holding ``*``, ``>`` or ``.`` would address other subjects or keys. Every valid
event goes to the faust topic :data:`EVENTS_TOPIC`, whichever way it came in.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import StringConstraints

from tables.errors import ConfigError

__all__ = [
    "DEADLETTER_INVALID",
    "DEADLETTER_LATE",
    "EVENTS_TOPIC",
    "ID_PATTERN",
    "ID_RULE",
    "ID_SPELLING",
    "Id",
    "METRICS_BUCKET",
    "METRIC_NAMES",
    "ingest_subject",
    "is_id",
    "metrics_key",
    "parse_metrics_key",
    "require_id",
    "require_metric",
    "result_filter",
    "result_msg_id",
    "result_subject",
]

_ID_CHARACTERS: Final = "A-Za-z0-9_-"
_ID_MAX_LENGTH: Final = 64

#: a student's or a game's id, as a regular expression (add ``^...$`` for a JSON Schema pattern)
ID_PATTERN: Final = f"[{_ID_CHARACTERS}]{{1,{_ID_MAX_LENGTH}}}"
#: the id rule in words, as error messages give it
ID_SPELLING: Final = f"1-{_ID_MAX_LENGTH} characters of A-Z a-z 0-9 _ -"
ID_RULE: Final = f"must be {ID_SPELLING}"
#: the id rule as a pydantic field type (the models of results)
Id = Annotated[str, StringConstraints(min_length=1, max_length=_ID_MAX_LENGTH, pattern=f"^[{_ID_CHARACTERS}]+$")]

#: the metrics of this deployment, each a KV key prefix and a result subject token
METRIC_NAMES: Final = ("engagement", "outcomes", "progression")
#: the one metric whose windows are per student *and* game
_PER_GAME: Final = "outcomes"

#: the faust topic HTTP and NATS ingest write every valid event to, and the agents read
EVENTS_TOPIC: Final = "events"
METRICS_BUCKET: Final = "metrics"
DEADLETTER_INVALID: Final = "deadletter.invalid"
#: followed by ``.<metric>``
DEADLETTER_LATE: Final = "deadletter.late"

_ID: Final = re.compile(ID_PATTERN, re.ASCII)


def is_id(value: object) -> bool:
    """Whether ``value`` is a valid student or game id."""
    return type(value) is str and _ID.fullmatch(value) is not None


def require_id(field: str, value: str) -> str:
    """``value`` if it is a valid student or game id, else :class:`ConfigError` naming ``field``."""
    if not is_id(value):
        raise ConfigError(field, value, ID_RULE, kind="Argument")
    return value


def require_metric(metric: str) -> str:
    """``metric`` if it is one of :data:`METRIC_NAMES`, else :class:`ConfigError`."""
    if metric not in METRIC_NAMES:
        raise ConfigError("metric", metric, f"must be one of {', '.join(METRIC_NAMES)}", kind="Argument")
    return metric


def ingest_subject(type_: str, student_id: str) -> str:
    """Where a producer publishes one event over NATS."""
    return f"events.{type_}.{require_id('student_id', student_id)}"


def result_subject(metric: str, student_id: str) -> str:
    """Where a closed window's result is published."""
    return f"results.{require_metric(metric)}.{require_id('student_id', student_id)}"


def result_filter(metric: str | None = None, student_id: str | None = None) -> str:
    """The result subjects of one metric (or all) and one student (or all), as a NATS filter."""
    metric_token = require_metric(metric) if metric is not None else "*"
    student_token = require_id("student_id", student_id) if student_id is not None else "*"
    return f"results.{metric_token}.{student_token}"


def result_msg_id(kv_key: str) -> str:
    """The ``Nats-Msg-Id`` of a final's publish on its result subject: one per window, so a replay
    publishing it again within the results stream's duplicate window is a no-op."""
    return f"result:{kv_key}"


def metrics_key(metric: str, student_id: str, window_start: int, game_id: str | None = None) -> str:
    """The KV key of one window's result; ``game_id`` is required for (and only for) outcomes."""
    require_metric(metric)
    parts = [metric, require_id("student_id", student_id)]
    if metric == _PER_GAME:
        if game_id is None:
            raise ConfigError("game_id", None, f"is required for {_PER_GAME}", kind="Argument")
        parts.append(require_id("game_id", game_id))
    elif game_id is not None:
        raise ConfigError("game_id", game_id, f"does not apply to {metric}", kind="Argument")
    return ".".join([*parts, str(int(window_start))])


def parse_metrics_key(key: str) -> tuple[str, str, str | None, int] | None:
    """``(metric, student_id, game_id, window_start)`` of a key of the contract, or None."""
    tokens = key.split(".")
    metric = tokens[0]
    if metric not in METRIC_NAMES or len(tokens) != (4 if metric == _PER_GAME else 3):
        return None
    try:
        start = int(tokens[-1])
    except ValueError:
        return None
    return metric, tokens[1], tokens[2] if metric == _PER_GAME else None, start
