"""The ingest event: the public contract every producer and every agent codes against.

An event is one JSON object::

    {"event_id": "ev-1", "student_id": "s-42", "type": "game", "name": "level_completed",
     "occurred_at": "2024-05-01T10:00:00Z", "game_id": "g-math",
     "data": {"level": 3, "score": 120, "duration_ms": 5400}}

:func:`validate_event` and :func:`validate_batch` are the only doors in: they parse, validate and
collect *every* problem of *every* event before raising :class:`InvalidEvents`, so a producer can fix
a whole batch from one answer. Bytes that are not JSON at all raise :class:`MalformedJSON` instead.

Ids end up as NATS subject tokens and KV key parts downstream, which is why their character sets
leave out ``*``, ``>``, whitespace and (except in ``event_id``) ``.``.

Every number anywhere in ``data`` is finite and at most :data:`MAX_DATA_NUMBER` (2**53) in
magnitude, so that whatever the contract admits is a double exactly, can be summed by a window
without overflowing, and comes out as strict JSON. A problem inside ``data`` is reported at its
dotted path: object keys as they are, array positions as 0-based numbers (``data.items.3.score``).

"Optional" means the key may be absent; ``null`` is not a value of any field. A present field must
satisfy its rule, so there is exactly one way to say "no session".

The clock is never read here: the rule "not more than 5 minutes ahead" compares against the ``now``
the caller passes in (as the pydantic validation context ``{"now": <epoch seconds>}`` when
validating :class:`Event` directly). Without a ``now`` the rule is skipped, which is what an agent
re-reading an already admitted event wants.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, from_json

from contract.event_data import MAX_DATA_NUMBER, Path, data_rules, numbers_out_of_range
from tables.compact_json import compact_encoder
from tables.errors import StreamsError

__all__ = [
    "Event",
    "FieldError",
    "InvalidEvents",
    "MAX_BATCH_EVENTS",
    "MAX_DATA_BYTES",
    "MAX_DATA_NUMBER",
    "MAX_FUTURE_SECONDS",
    "MalformedJSON",
    "validate_batch",
    "validate_event",
]

MAX_BATCH_EVENTS: Final = 1000
"""Most events one ``{"events": [...]}`` body may carry."""

MAX_DATA_BYTES: Final = 16 * 1024
"""Largest ``data``, measured as its compact JSON encoding in UTF-8."""

MAX_FUTURE_SECONDS: Final = 300.0
"""How far ``occurred_at`` may be ahead of the server's clock (producers' clocks drift)."""

_RULE: Final = "event_rule"
"""pydantic error type of every error raised by this module's own checks; its message is final."""

_ABSENT: Final = object()
"""Stands in for a ``game_id`` a game event left out (see ``Event._mark_missing_game_id``)."""

# Python's fromisoformat accepts far more than RFC 3339 (no colon in offsets, week dates, ...), so
# the shape is checked first. ASCII digits only: ``\d`` would also match e.g. Arabic-Indic digits.
_RFC3339 = re.compile(
    r"\d{4}-\d\d-\d\d[Tt](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?"  # date, time, fraction
    r"(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)",  # the offset, never optional
    re.ASCII,
)
_JITER_ERROR = re.compile(r"(?P<reason>.*?)(?: at line (?P<line>\d+) column (?P<column>\d+))?", re.DOTALL)

_SubjectId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
_FreeText = Annotated[str, StringConstraints(max_length=128)]

_EVENT_ID: Final = "must be 1-128 characters of A-Z a-z 0-9 _ . : -"
_SUBJECT_ID: Final = "must be 1-64 characters of A-Z a-z 0-9 _ -"
_FREE_TEXT: Final = "must be a string of at most 128 characters"
_OCCURRED_AT: Final = "must be RFC 3339 with a UTC offset"
_JSON_ONLY: Final = "must hold only JSON values"
_NUMBER: Final = f"must be a number >= -{MAX_DATA_NUMBER} and <= {MAX_DATA_NUMBER}"
_UNICODE_ONLY: Final = "must hold only valid Unicode text"

# What a failed built-in pydantic check on each top-level field means, in the contract's words.
# pydantic's own messages ("String should match pattern '^[a-z0-9_]+$'") name the mechanism, not
# the rule, and differ between failure modes of the same rule (type, length, pattern).
_FIELD_PROBLEMS: Final[dict[str, str]] = {
    "event_id": _EVENT_ID,
    "student_id": _SUBJECT_ID,
    "type": "must be one of game, interaction, engagement",
    "name": "must be 1-64 characters of a-z 0-9 _",
    "occurred_at": _OCCURRED_AT,
    "game_id": _SUBJECT_ID,
    "session_id": _FREE_TEXT,
    "activity_id": _FREE_TEXT,
    "data": "must be a JSON object",
}


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field of one event.

    ``index`` is the event's position in the batch (0 for a single event) or -1 when the problem is
    the batch envelope itself. ``field`` is a dotted path (``occurred_at``, ``data.level``); it is
    empty when the event (or body) as a whole is not an object. ``message`` says what the rule is;
    the offending value is left out because it is untrusted and may be up to 16 KiB long.
    """

    index: int
    field: str
    message: str


class InvalidEvents(StreamsError, ValueError):
    """The body parsed as JSON but one or more events break the contract; ``errors`` lists them all."""

    _SHOWN: Final = 5

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        shown = "; ".join(
            f"[{e.index}] {e.field or ('(body)' if e.index < 0 else '(event)')}: {e.message}"
            for e in errors[: self._SHOWN]
        )
        more = f" (and {len(errors) - self._SHOWN} more)" if len(errors) > self._SHOWN else ""
        super().__init__(f"{len(errors)} invalid field(s): {shown}{more}")


class MalformedJSON(StreamsError, ValueError):
    """The body is not JSON text (or not UTF-8); nothing in it was validated.

    ``line`` and ``column`` are the parser's position: 1-based, the column counted in bytes (0 when
    the input is empty).
    """

    def __init__(self, reason: str, line: int, column: int) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        super().__init__(f"malformed JSON at line {line} column {column}: {reason}")


def _problem(message: str) -> PydanticCustomError:
    return PydanticCustomError(_RULE, message)


def _parse_occurred_at(value: Any) -> datetime:
    if isinstance(value, datetime):  # Python callers may hand over an aware datetime.
        if value.utcoffset() is None:
            raise _problem(_OCCURRED_AT)
        return value.astimezone(UTC)
    if type(value) is not str or not _RFC3339.fullmatch(value):
        raise _problem(_OCCURRED_AT)
    try:
        # RFC 3339 allows lower-case "t" and "z"; fromisoformat does not.
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError):  # 2024-02-30, year 0000, or out of range once in UTC
        raise _problem(_OCCURRED_AT) from None


# One encoder for the size limit and for to_json_bytes, so a producer can check the limit against
# the canonical bytes.
_compact_json = compact_encoder(sort_keys=True, ensure_ascii=False, allow_nan=False)
#: a string as that encoder writes it (ensure_ascii=False), quotes included
_json_string: Callable[[str], str] = encode_basestring


class Event(BaseModel):
    """One validated event. Frozen: agents share it between streams and tables.

    ``occurred_at`` is always an aware datetime in UTC, whatever offset the producer used.
    """

    # allow_inf_nan=True: the only floats are inside data, and _check_data refuses NaN and the
    # infinities itself, naming where they are (pydantic's locations inside a JsonValue name its
    # union members, and 1e400, valid JSON, parses to an infinity).
    # hide_input_in_errors: a logged ValidationError must not carry 16 KiB of someone's data.
    # extra="ignore": a field this version does not know is dropped, not refused, so a producer
    # that adds one (a newer client) is not cut off (docs/api.md, compatibility); the fields
    # known here are checked exactly as before, and what a metric needs beyond them goes in data.
    model_config = ConfigDict(
        frozen=True, extra="ignore", strict=True, allow_inf_nan=True, hide_input_in_errors=True
    )

    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
    student_id: _SubjectId
    type: Literal["game", "interaction", "engagement"]
    name: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
    occurred_at: datetime
    game_id: _SubjectId | None = None
    session_id: _FreeText | None = None
    activity_id: _FreeText | None = None
    # JsonValue rather than Any: a Python caller's tuples, sets, non-string keys or NaN would
    # otherwise be accepted and then change (or fail) on the way out through to_json_bytes.
    # validate_default: an absent data must still meet the data rules of its event name.
    data: dict[str, JsonValue] = Field(default_factory=dict, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _mark_missing_game_id(cls, value: Any) -> Any:
        # A field validator cannot tell "left out" from an explicit null once the default is
        # filled in, and a model-level "after" check would only run when every other field is
        # valid, hiding this error behind the others. So the absence is marked here and reported
        # by the game_id validator, alongside every other field error.
        if isinstance(value, dict) and value.get("type") == "game" and "game_id" not in value:
            return {**value, "game_id": _ABSENT}
        return value

    @field_validator("game_id", "session_id", "activity_id", mode="before")
    @classmethod
    def _check_optional(cls, value: Any, info: ValidationInfo) -> Any:
        # Runs only for keys that are present (and for the marked game_id), so null is refused
        # without refusing absence. pydantic does the rest, and its length check also refuses a
        # lone surrogate (possible from a Python dict), which could never be written as UTF-8.
        if value is _ABSENT:
            raise _problem("field required")
        if value is None:
            raise _problem(_FIELD_PROBLEMS[info.field_name or ""])
        return value

    @field_validator("occurred_at", mode="plain")
    @classmethod
    def _check_occurred_at(cls, value: Any, info: ValidationInfo) -> datetime:
        occurred_at = _parse_occurred_at(value)
        now = info.context.get("now") if info.context else None
        if now is not None and occurred_at.timestamp() > now + MAX_FUTURE_SECONDS:
            raise _problem("is more than 5 minutes in the future")
        return occurred_at

    @field_validator("data")
    @classmethod
    def _check_data(cls, value: dict[str, JsonValue], info: ValidationInfo) -> dict[str, JsonValue]:
        # Runs after type and name (field order). A type or name that failed is missing from
        # info.data, and then only the rules that do not depend on it apply (interaction/*).
        problems: list[tuple[Path, str]] = []
        rules = data_rules(info.data.get("type"), info.data.get("name"))
        for rule in rules:
            if rule.key in value:
                if not rule.check(value[rule.key]):
                    problems.append(((rule.key,), rule.problem))
            elif rule.required:
                problems.append(((rule.key,), "field required"))
        out_of_range: list[Path] = []
        numbers_out_of_range(value.items(), (), out_of_range)
        if out_of_range:
            # A key with a rule of its own was judged by that rule, which bounds its numbers too.
            ruled = {rule.key for rule in rules}
            problems += [(path, _NUMBER) for path in out_of_range if path[0] not in ruled]
        try:
            size = len(_compact_json(value).encode())
        except UnicodeEncodeError:  # a lone surrogate, which only a Python caller can send
            problems.append(((), _UNICODE_ONLY))
        except ValueError:  # NaN or an infinity (allow_nan=False), reported above with its path
            pass
        else:
            if size > MAX_DATA_BYTES:
                problems.append(((), f"must be at most {MAX_DATA_BYTES} bytes as compact JSON"))
        if problems:
            # pydantic prefixes these locations with "data", giving paths like data.level.
            raise ValidationError.from_exception_data(
                cls.__name__,
                [InitErrorDetails(type=_problem(message), loc=path, input=value) for path, message in problems],
            )
        return value

    @property
    def timestamp(self) -> float:
        """The event time, ``occurred_at``, as epoch seconds; what windows are computed from."""
        return self.occurred_at.timestamp()

    def to_json_bytes(self) -> bytes:
        """Canonical compact JSON: sorted keys, UTF-8, ``occurred_at`` in UTC with ``Z``.

        Equal events give equal bytes, so the bytes can be hashed, compared or deduplicated, and
        they validate back into an equal :class:`Event`. Absent optional fields stay absent.
        """
        # Written out in the encoder's sorted key order rather than encoding a dict of the
        # fields (a quarter less time): every field but data is a string or absent.
        # tests/unit/contract/test_events_properties.py holds this to the encoder's bytes.
        fields = self.__dict__
        parts = []
        if (activity_id := fields["activity_id"]) is not None:
            parts.append('"activity_id":' + _json_string(activity_id))
        parts.append('"data":' + _compact_json(fields["data"]))
        parts.append('"event_id":' + _json_string(fields["event_id"]))
        if (game_id := fields["game_id"]) is not None:
            parts.append('"game_id":' + _json_string(game_id))
        parts.append('"name":' + _json_string(fields["name"]))
        parts.append('"occurred_at":"' + fields["occurred_at"].replace(tzinfo=None).isoformat() + 'Z"')
        if (session_id := fields["session_id"]) is not None:
            parts.append('"session_id":' + _json_string(session_id))
        parts.append('"student_id":' + _json_string(fields["student_id"]))
        parts.append('"type":' + _json_string(fields["type"]))
        return ("{" + ",".join(parts) + "}").encode()


def _parse(raw: bytes | str) -> Any:
    if isinstance(raw, str):
        text = raw
        try:
            raw = text.encode()
        except UnicodeEncodeError as exc:
            line = text.count("\n", 0, exc.start) + 1
            column = len(text[text.rfind("\n", 0, exc.start) + 1 : exc.start].encode()) + 1
            raise MalformedJSON("lone surrogate, not valid Unicode", line, column) from None
    try:
        return from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        match = _JITER_ERROR.fullmatch(str(exc))
        assert match is not None  # the pattern matches any text
        raise MalformedJSON(match["reason"], int(match["line"] or 0), int(match["column"] or 0)) from None


def _field_errors(index: int, exc: ValidationError) -> list[FieldError]:
    errors = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        path = ".".join(str(part) for part in error["loc"])
        kind = error["type"]
        if kind == "missing":
            errors.append(FieldError(index, path, "field required"))
        elif kind in ("extra_forbidden", "invalid_key"):  # an unknown name, or a key that is no name
            errors.append(FieldError(index, path, "not allowed"))
        elif kind == _RULE:
            errors.append(FieldError(index, path, error["msg"]))
        elif error["loc"][0] == "data" and len(error["loc"]) > 1:
            # Somewhere inside data; pydantic's location there names its own union members
            # ("list", "float", "[key]"), not a path the producer could follow.
            errors.append(FieldError(index, "data", _JSON_ONLY))
        else:
            field = str(error["loc"][0])
            errors.append(FieldError(index, field, _FIELD_PROBLEMS[field]))
    return errors


def _validate_into(
    index: int, document: Any, context: dict[str, float], errors: list[FieldError]
) -> Event | None:
    if not isinstance(document, dict):
        errors.append(FieldError(index, "", "must be a JSON object"))
        return None
    try:
        return Event.model_validate(document, context=context)
    except ValidationError as exc:
        errors.extend(_field_errors(index, exc))
        return None


def validate_event(raw: bytes | str | dict[str, Any], *, now: float) -> Event:
    """Parse (if bytes or str) and validate one event; ``now`` is the server's clock, epoch seconds.

    Raises :class:`MalformedJSON` or :class:`InvalidEvents` (every problem, all with index 0).
    """
    document = _parse(raw) if isinstance(raw, bytes | str) else raw
    errors: list[FieldError] = []
    event = _validate_into(0, document, {"now": now}, errors)
    if event is None:
        raise InvalidEvents(errors)
    return event


def validate_batch(body: bytes | str | dict[str, Any], *, now: float) -> list[Event]:
    """Validate one event object or ``{"events": [...]}`` with 1 to 1000 events, all or nothing.

    Every problem of every event is collected before :class:`InvalidEvents` is raised, so one
    answer tells a producer everything to fix. Problems with the envelope (not an object, a
    wrong count) carry index -1; keys next to ``events`` are ignored, as unknown fields of an event
    are. A body with too many events is refused
    without looking at them: the limit exists to bound the work done per request.
    """
    document = _parse(body) if isinstance(body, bytes | str) else body
    if not isinstance(document, dict):
        raise InvalidEvents([FieldError(-1, "", 'must be an event object or {"events": [...]}')])
    if "events" not in document:
        return [validate_event(document, now=now)]
    errors: list[FieldError] = []
    items = document["events"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH_EVENTS:
        errors.append(FieldError(-1, "events", f"must be a list of 1 to {MAX_BATCH_EVENTS} events"))
        raise InvalidEvents(errors)
    context = {"now": now}
    events: list[Event] = []
    for index, item in enumerate(items):
        event = _validate_into(index, item, context, errors)
        if event is not None:
            events.append(event)
    if errors:
        raise InvalidEvents(errors)
    return events
