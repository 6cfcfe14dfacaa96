"""The names of the learning contract: ids, metrics, the events topic, subjects and KV keys.

Other teams code against these names (docs/api.md), so they are spelled exactly as the contract
says, without the deployment prefix that faust's own subjects carry::

    events.<type>.<student_id>          any client publishes an event here (core or JetStream)
    deadletter.invalid                  events that failed validation, the reason in a header
    deadletter.late.<metric>            events that arrived after their window closed
    deadletter.invalid.<metric>         events a metric could not read
    results.<metric>.<student_id>       a window's result, published when it closes
    KV bucket "metrics"                 <metric>.<key part>[.<key part>...].<window_start>
    KV bucket "metric_registry"         <metric>: the metric's description (contract.registry)

No metric is named here: the metrics are those whose workers run, each known by the description it
publishes (:mod:`contract.registry`), whose ``key_fields`` give the parts of its KV keys, in order
(``student_id`` first for every metric of the project: ``hints.<student_id>.<start>``,
``<metric>.<student_id>.<game_id>.<start>`` for a metric per student and game). The first key part
is also the result subject's last token.

A metric's version 1 is spelled by its name alone; a later version runs beside it as a series of
its own, ``<metric>_v<version>`` (:func:`metric_series`), wherever the name would appear: KV keys
(``engagement_v2.s-42.1714557600``), result and dead-letter subjects
(``results.engagement_v2.s-42``), and the version's consumer group. So two versions never share a
key or a subject, and a reader picks one by picking its series (docs/api.md, versions). A metric's
name therefore never ends in ``_v`` and digits.

Ids become subject tokens and key parts, so :func:`require_id` admits only the contract's id
characters: an id holding ``*``, ``>`` or ``.`` would address other subjects or keys. Every valid
event goes to the faust topic :data:`EVENTS_TOPIC`, whichever way it came in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
    "METRIC_NAME_PATTERN",
    "ingest_subject",
    "is_id",
    "metric_series",
    "metrics_key",
    "parse_metrics_key",
    "parse_series",
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

#: a metric's name (a KV key prefix and a result subject token), as a regular expression
METRIC_NAME_PATTERN: Final = f"[{_ID_CHARACTERS}]{{1,{_ID_MAX_LENGTH}}}"
_METRIC_RULE: Final = f"must be {ID_SPELLING} (a metric's name)"

#: the faust topic HTTP and NATS ingest write every valid event to, and the agents read
EVENTS_TOPIC: Final = "events"
METRICS_BUCKET: Final = "metrics"
DEADLETTER_INVALID: Final = "deadletter.invalid"
#: followed by ``.<metric>``
DEADLETTER_LATE: Final = "deadletter.late"

_ID: Final = re.compile(ID_PATTERN, re.ASCII)
#: how a series token ends after version 1; a metric's own name never ends so
_VERSION_SUFFIX: Final = re.compile(r"_v([0-9]+)$", re.ASCII)


def is_id(value: object) -> bool:
    """Whether ``value`` is a valid student or game id."""
    return type(value) is str and _ID.fullmatch(value) is not None


def require_id(field: str, value: str) -> str:
    """``value`` if it is a valid student or game id, else :class:`ConfigError` naming ``field``."""
    if not is_id(value):
        raise ConfigError(field, value, ID_RULE, kind="Argument")
    return value


def require_metric(metric: str) -> str:
    """``metric`` if it is spelled as a metric's name can be, else :class:`ConfigError`.

    Whether such a metric runs is the registry's to say (:mod:`contract.registry`)."""
    if not is_id(metric):
        raise ConfigError("metric", metric, _METRIC_RULE, kind="Argument")
    return metric


def metric_series(metric: str, version: int = 1) -> str:
    """The token version ``version`` of ``metric`` goes by in keys, subjects and its group:
    the name for version 1, ``<metric>_v<version>`` after. :class:`ConfigError` for a name that
    already ends so (it would read as another metric's version) or a series too long for a token."""
    require_metric(metric)
    if _VERSION_SUFFIX.search(metric):
        raise ConfigError("name", metric, "must not end in _v and digits: that spells a metric's version", kind="Argument")
    if type(version) is not int or version < 1:
        raise ConfigError("version", version, "must be an int >= 1", kind="Argument")
    if version == 1:
        return metric
    series = f"{metric}_v{version}"
    if not is_id(series):
        raise ConfigError("name", metric, f"is too long for its version {version} ({series!r} {_METRIC_RULE})", kind="Argument")
    return series


def parse_series(token: str) -> tuple[str, int]:
    """``(metric, version)`` of a series token (:func:`metric_series`); any other id is a
    metric's version 1."""
    match = _VERSION_SUFFIX.search(token)
    if match is None or match.start() == 0 or match.group(1).startswith("0") or int(match.group(1)) < 2:
        return token, 1
    return token[: match.start()], int(match.group(1))


def ingest_subject(type_: str, student_id: str) -> str:
    """Where a producer publishes one event over NATS."""
    return f"events.{type_}.{require_id('student_id', student_id)}"


def result_subject(metric: str, first_key_part: str) -> str:
    """Where a closed window's result is published: by its key's first part (the student)."""
    return f"results.{require_metric(metric)}.{require_id('student_id', first_key_part)}"


def result_filter(metric: str | None = None, student_id: str | None = None) -> str:
    """The result subjects of one metric (or all) and one student (or all), as a NATS filter."""
    metric_token = require_metric(metric) if metric is not None else "*"
    student_token = require_id("student_id", student_id) if student_id is not None else "*"
    return f"results.{metric_token}.{student_token}"


def result_msg_id(kv_key: str) -> str:
    """The ``Nats-Msg-Id`` of a final's publish on its result subject: one per window, so a replay
    publishing it again within the results stream's duplicate window is a no-op."""
    return f"result:{kv_key}"


def metrics_key(metric: str, key_parts: Sequence[str], window_start: int) -> str:
    """The KV key of one window's result: the metric, its key's parts in order, the start."""
    if isinstance(key_parts, str) or not key_parts:
        raise ConfigError("key_parts", key_parts, "must be the key's parts, at least one", kind="Argument")
    parts = [require_id(f"key_parts[{n}]", part) for n, part in enumerate(key_parts)]
    return ".".join([require_metric(metric), *parts, str(int(window_start))])


def parse_metrics_key(key: str) -> tuple[str, tuple[str, ...], int] | None:
    """``(metric, key_parts, window_start)`` of a key of the contract, or None."""
    tokens = key.split(".")
    if len(tokens) < 3 or not all(is_id(token) for token in tokens[:-1]):
        return None
    try:
        start = int(tokens[-1])
    except ValueError:
        return None
    return tokens[0], tuple(tokens[1:-1]), start
