"""Properties of the event contract, with strategies written from the contract, not the code."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.events import MAX_DATA_NUMBER, Event, InvalidEvents, MalformedJSON, validate_batch, validate_event

from .samples import DROP, GAME, changed

NOW = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
FAST = settings(max_examples=150, deadline=None)

SUBJECT_CHARS = string.ascii_letters + string.digits + "_-"
EVENT_ID_CHARS = SUBJECT_CHARS + ".:"
NAME_CHARS = string.ascii_lowercase + string.digits + "_"
FIELDS = (
    "event_id",
    "student_id",
    "type",
    "name",
    "occurred_at",
    "game_id",
    "session_id",
    "activity_id",
    "data",
)
RULED_KEYS = {"level", "score", "duration_ms", "outcome", "seconds", "correct"}

counts = st.integers(0, 10**12) | st.just(MAX_DATA_NUMBER)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
# Numbers the contract admits anywhere in data: finite, magnitude at most 2**53, bounds included.
in_range = (
    st.integers(-MAX_DATA_NUMBER, MAX_DATA_NUMBER)
    | st.floats(-float(MAX_DATA_NUMBER), float(MAX_DATA_NUMBER))
    | st.sampled_from([MAX_DATA_NUMBER, -MAX_DATA_NUMBER, float(MAX_DATA_NUMBER)])
)
# ... and the ones it refuses there (JSON text can carry each of them; NaN and the infinities
# only a Python caller).
out_of_range = (
    st.integers(min_value=MAX_DATA_NUMBER + 1)
    | st.integers(max_value=-MAX_DATA_NUMBER - 1)
    | st.floats(min_value=float(MAX_DATA_NUMBER), exclude_min=True, allow_infinity=False)
    | st.floats(max_value=-float(MAX_DATA_NUMBER), exclude_max=True, allow_infinity=False)
)
amounts = counts | st.floats(0, 1e12, allow_nan=False, allow_infinity=False) | st.just(float(MAX_DATA_NUMBER))
offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda minutes: timezone(timedelta(minutes=minutes)))
json_scalars = (
    st.none()
    | st.booleans()
    | in_range
    | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
# What each (type, name) must carry, written out from the contract; optional keys are separate.
REQUIRED_DATA: dict[tuple[str, str], dict[str, st.SearchStrategy[Any]]] = {
    ("game", "level_started"): {"level": counts},
    ("game", "level_completed"): {"level": counts, "score": amounts, "duration_ms": counts},
    ("game", "level_failed"): {"level": counts, "duration_ms": counts},
    ("game", "game_finished"): {
        "outcome": st.sampled_from(["win", "loss", "abandon"]),
        "score": amounts,
        "duration_ms": counts,
    },
    ("engagement", "heartbeat"): {
        "seconds": st.integers(1, 3600) | st.floats(0, 3600, exclude_min=True, allow_nan=False)
    },
}
OPTIONAL_DATA: dict[tuple[str, str], dict[str, st.SearchStrategy[Any]]] = {
    ("game", "level_failed"): {"score": amounts},
    ("interaction", "answer_submitted"): {"correct": st.booleans()},
    ("interaction", "hint_opened"): {"correct": st.booleans()},
}
NAMES = {
    "game": ["level_started", "level_completed", "level_failed", "game_finished", "achievement_unlocked"],
    "interaction": ["answer_submitted", "hint_opened"],
    "engagement": ["heartbeat", "session_started"],
}


def rfc3339(moment: datetime, zulu: bool) -> str:
    text = moment.isoformat()
    return text.replace("+00:00", "Z") if zulu else text


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    type_ = draw(st.sampled_from(sorted(NAMES)))
    name = draw(st.sampled_from(NAMES[type_]) | st.text(NAME_CHARS, min_size=1, max_size=64))
    moment = draw(st.datetimes(datetime(1970, 1, 2), datetime(2099, 12, 31), timezones=offsets))
    free_keys = st.text(max_size=8).filter(lambda key: key not in RULED_KEYS)
    extra = draw(st.dictionaries(free_keys, json_values, max_size=3))
    required = draw(st.fixed_dictionaries(REQUIRED_DATA.get((type_, name), {})))
    optional = draw(st.fixed_dictionaries({}, optional=OPTIONAL_DATA.get((type_, name), {})))
    event: dict[str, Any] = {
        "event_id": draw(st.text(EVENT_ID_CHARS, min_size=1, max_size=128)),
        "student_id": draw(st.text(SUBJECT_CHARS, min_size=1, max_size=64)),
        "type": type_,
        "name": name,
        "occurred_at": rfc3339(moment, draw(st.booleans())),
        "data": {**extra, **required, **optional},
    }
    if type_ == "game" or draw(st.booleans()):
        event["game_id"] = draw(st.text(SUBJECT_CHARS, min_size=1, max_size=64))
    for field in ("session_id", "activity_id"):
        if draw(st.booleans()):
            event[field] = draw(st.text(max_size=128))
    if not event["data"] and draw(st.booleans()):
        del event["data"]
    return event


@given(valid_events())
@FAST
def test_valid_events_validate_and_round_trip(document: dict[str, Any]) -> None:
    event = validate_event(json.dumps(document).encode(), now=NOW)
    assert event == validate_event(document, now=NOW)
    assert event.timestamp == datetime.fromisoformat(document["occurred_at"]).timestamp()
    again = validate_event(event.to_json_bytes(), now=NOW)
    assert again == event
    assert again.to_json_bytes() == event.to_json_bytes()


def encoded_by_the_encoder(event: Event) -> bytes:
    """The canonical form from its definition: every present field, sorted, compact, UTF-8."""
    document = {key: value for key, value in event.model_dump().items() if value is not None}
    document["occurred_at"] = event.occurred_at.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True).encode()


@given(valid_events())
@FAST
def test_to_json_bytes_is_the_encoders_canonical_form_however_the_event_was_made(document: dict[str, Any]) -> None:
    # validated from bytes, from a dict without a context, and copied with other data
    validated = validate_event(json.dumps(document).encode(), now=NOW)
    plain = Event.model_validate(document)
    copied = validated.model_copy(update={"data": {"copied": [1, "é"]}})
    for event in (validated, plain, copied):
        assert event.to_json_bytes() == encoded_by_the_encoder(event)
    assert plain == validated and copied != validated


def test_to_json_bytes_writes_every_field_the_event_declares() -> None:
    every = changed(GAME, session_id="s\n\"1\u2028", activity_id="a\x00", data={**GAME["data"], "k": "\ud7ff"})
    written = json.loads(validate_event(every, now=NOW).to_json_bytes())
    assert written.keys() == Event.model_fields.keys()


non_strings = st.none() | st.booleans() | st.integers() | st.lists(st.integers(), max_size=2) | st.just({})


def breaking(allowed: str, max_size: int) -> st.SearchStrategy[Any]:
    """Values breaking a "1 to max_size characters of allowed" rule, one way at a time."""
    good = st.text(allowed, max_size=8)
    bad_char = st.sampled_from("*> .\t\n/é") | st.characters(codec="utf-8")
    return st.one_of(
        st.just(""),
        st.text(allowed, min_size=max_size + 1, max_size=max_size + 3),
        st.tuples(good, bad_char.filter(lambda char: char not in allowed), good).map("".join),
        non_strings,
    )


def future_times() -> st.SearchStrategy[str]:
    ahead = st.integers(301, 10**8).map(lambda seconds: datetime.fromtimestamp(NOW + seconds, UTC))
    return st.tuples(ahead, st.booleans()).map(lambda pair: rfc3339(*pair))


def bad_data_value(key: str) -> st.SearchStrategy[Any]:
    wrong_types = st.none() | st.booleans() | st.text(max_size=3) | st.lists(st.integers(), max_size=1)
    if key == "outcome":
        return wrong_types | st.text().filter(lambda text: text not in ("win", "loss", "abandon"))
    if key == "seconds":
        return wrong_types | st.integers(max_value=0) | st.integers(min_value=3601) | st.floats(3600.001, 1e9)
    if key == "score":
        return wrong_types | st.integers(max_value=-1) | st.floats(-1e9, -1e-9) | out_of_range
    if key == "correct":
        return st.none() | st.integers() | st.text(max_size=3) | finite_floats
    return wrong_types | st.integers(max_value=-1) | finite_floats | st.integers(min_value=MAX_DATA_NUMBER + 1)


@st.composite
def buried(draw: st.DrawFn, value: Any) -> tuple[Any, list[str]]:
    """``value`` wrapped in 0 to 3 arrays and objects among other in-range values, and the keys
    and positions leading to it from the outermost one."""
    path: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            others = draw(st.lists(json_values, max_size=3))
            position = draw(st.integers(0, len(others)))
            value = [*others[:position], value, *others[position:]]
            path.insert(0, str(position))
        else:
            key = draw(st.text(max_size=6))
            value = {**draw(st.dictionaries(st.text(max_size=6), json_values, max_size=3)), key: value}
            path.insert(0, key)
    return value, path


@st.composite
def one_field_broken(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    document = draw(valid_events())
    ruled = [key for key in document.get("data", {}) if key in RULED_KEYS]
    required = REQUIRED_DATA.get((document["type"], document["name"]), {})
    choices = [*FIELDS, *(f"data.{key}" for key in ruled)]
    choices += [f"drop data.{key}" for key in required]
    choices.append("out of range")
    if document["type"] == "game":
        choices.append("drop game_id")
    choice = draw(st.sampled_from(choices))
    if choice == "out of range":
        # One number out of range anywhere under a key without a rule of its own.
        key = draw(st.text(max_size=8).filter(lambda key: key not in RULED_KEYS))
        value, path = draw(buried(draw(out_of_range)))
        return {**document, "data": {**document.get("data", {}), key: value}}, ".".join(["data", key, *path])
    if choice.startswith("drop "):
        field = choice.removeprefix("drop ")
        if field == "game_id":
            return changed(document, game_id=DROP), field
        return {**document, "data": changed(document["data"], **{field[5:]: DROP})}, field
    if choice.startswith("data."):
        key = choice[5:]
        return {**document, "data": {**document["data"], key: draw(bad_data_value(key))}}, choice
    bad = {
        "event_id": breaking(EVENT_ID_CHARS, 128),
        "student_id": breaking(SUBJECT_CHARS, 64),
        "game_id": breaking(SUBJECT_CHARS, 64),
        "type": non_strings | st.text().filter(lambda text: text not in NAMES),
        "name": breaking(NAME_CHARS, 64),
        "occurred_at": future_times() | non_strings | st.text(max_size=30),
        "session_id": non_strings | st.text(min_size=129, max_size=140),
        "activity_id": non_strings | st.text(min_size=129, max_size=140),
        "data": non_strings.filter(lambda value: value != {}) | st.lists(json_values, max_size=2),
    }[choice]
    return {**document, choice: draw(bad)}, choice


@given(one_field_broken())
@FAST
def test_breaking_one_field_names_exactly_that_field(broken: tuple[dict[str, Any], str]) -> None:
    document, field = broken
    for raw in (document, json.dumps(document).encode()):
        try:
            validate_event(raw, now=NOW)
        except InvalidEvents as exc:
            assert [(error.index, error.field) for error in exc.errors] == [(0, field)]
        else:
            raise AssertionError(f"{field} broken, yet the event validated")


@given(valid_events(), st.text(min_size=1, max_size=10).filter(lambda key: key not in FIELDS), json_values)
@FAST
def test_an_unknown_field_is_ignored_not_refused(document: dict[str, Any], field: str, value: Any) -> None:
    # Compatibility (docs/api.md): a producer newer than this server may add a field.
    assert validate_event({**document, field: value}, now=NOW) == validate_event(document, now=NOW)


any_text = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=40)
json_ish_scalars = json_scalars | st.floats() | any_text | st.integers()
keys = any_text | st.sampled_from(FIELDS) | st.integers() | st.none()  # non-strings: Python callers
json_ish = st.recursive(
    json_ish_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
eventish = st.dictionaries(st.sampled_from([*FIELDS, "events", "extra", 0]), json_ish, max_size=10)


@st.composite
def anything(draw: st.DrawFn) -> Any:
    """Raw bodies and Python values, from noise to almost valid events."""
    mangled = st.tuples(valid_events(), st.sampled_from(FIELDS), json_ish).map(
        lambda triple: {**triple[0], triple[1]: triple[2]}
    )
    batches = st.lists(mangled | eventish, max_size=3).map(lambda events: {"events": events})
    value = draw(json_ish | eventish | mangled | batches)
    encoding = draw(st.sampled_from(["python", "json", "bytes", "text"]))
    if encoding == "json":
        return json.dumps(value).encode()  # Python keys become strings, NaN becomes a bare NaN
    if encoding == "bytes":
        return draw(st.binary(max_size=60))
    if encoding == "text":
        return draw(any_text)
    return value


@given(anything())
@FAST
def test_nothing_but_the_two_errors_escapes(body: Any) -> None:
    for validate in (validate_event, validate_batch):
        try:
            result = validate(body, now=NOW)
        except (InvalidEvents, MalformedJSON):
            continue
        for event in result if isinstance(result, list) else [result]:
            assert isinstance(event, Event)
            assert validate_event(event.to_json_bytes(), now=NOW) == event
