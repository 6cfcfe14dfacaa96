"""The names of the contract, and the id rule that keeps ids from addressing other subjects or keys."""

from __future__ import annotations

import pytest

import bridges.public.streams as streams
from contract import names
from contract.names import (
    DEADLETTER_INVALID,
    DEADLETTER_LATE,
    EVENTS_TOPIC,
    ID_PATTERN,
    METRICS_BUCKET,
    ingest_subject,
    is_id,
    metrics_key,
    metrics_key_prefix,
    parse_metrics_key,
    require_id,
    result_filter,
    result_subject,
    window_key_of,
)
from tables.errors import ConfigError

BAD_IDS = ["", "*", ">", "s.1", "s 1", "s*", "a>b", "é", "x" * 65, "s\n1", "s/1"]
GOOD_IDS = ["s", "S-9_x", "x" * 64]


def test_the_contract_names() -> None:
    assert (EVENTS_TOPIC, METRICS_BUCKET) == ("events", "metrics")
    assert (DEADLETTER_INVALID, DEADLETTER_LATE) == ("deadletter.invalid", "deadletter.late")
    assert ID_PATTERN == "[A-Za-z0-9_-]{1,64}"
    assert ingest_subject("game", "s-42") == "events.game.s-42"
    assert result_subject("outcomes", "s_1") == "results.outcomes.s_1"


@pytest.mark.parametrize("value", GOOD_IDS)
def test_valid_ids_pass(value: str) -> None:
    assert is_id(value)
    assert require_id("student_id", value) == value


@pytest.mark.parametrize("value", [*BAD_IDS, None, 7])
def test_ids_that_could_address_other_subjects_are_refused(value: str) -> None:
    assert not is_id(value)
    with pytest.raises(ConfigError, match="'student_id'.*must be 1-64 characters of A-Z a-z 0-9 _ -"):
        require_id("student_id", value)
    with pytest.raises(ConfigError):
        result_subject("engagement", value)
    with pytest.raises(ConfigError):
        metrics_key("engagement", [value], 60)
    with pytest.raises(ConfigError):
        metrics_key("engagement", ["s1", value], 60)
    if value is not None:  # None is the filter's wildcard
        with pytest.raises(ConfigError):
            result_filter("engagement", value)


def test_metrics_keys_are_the_metric_its_key_parts_in_order_and_the_start() -> None:
    assert metrics_key("hints", ["s1"], 1_714_557_600) == "hints.s1.1714557600"
    assert metrics_key("wins", ["s1", "g-math"], 60) == "wins.s1.g-math.60"
    with pytest.raises(ConfigError, match="at least one"):
        metrics_key("hints", [], 60)
    with pytest.raises(ConfigError, match="at least one"):
        metrics_key("hints", "s1", 60)  # a string is not a list of parts
    with pytest.raises(ConfigError, match="a metric's name"):
        metrics_key("a.b", ["s1"], 60)


def test_a_keys_prefix_names_each_of_its_windows_as_metrics_key_does() -> None:
    prefix = metrics_key_prefix("wins", ["s1", "g-math"])
    assert prefix == "wins.s1.g-math"
    assert [window_key_of(prefix, start) for start in (60, 120.0)] == [
        metrics_key("wins", ["s1", "g-math"], 60), metrics_key("wins", ["s1", "g-math"], 120)
    ]
    with pytest.raises(ConfigError, match=r"key_parts\[1\]"):
        metrics_key_prefix("wins", ["s1", "g.math"])


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("hints.s1.60", ("hints", ("s1",), 60)),
        ("wins.s1.g1.120", ("wins", ("s1", "g1"), 120)),
        ("hints.s1.soon", None),
        ("hints.60", None),
    ],
)
def test_parsing_keys(key: str, parsed: tuple[str, tuple[str, ...], int] | None) -> None:
    assert parse_metrics_key(key) == parsed
    if parsed is not None:
        metric, parts, start = parsed
        assert metrics_key(metric, parts, start) == key


@pytest.mark.parametrize(
    ("metric", "student", "subjects"),
    [
        (None, None, "results.*.*"),
        ("outcomes", None, "results.outcomes.*"),
        (None, "s-42", "results.*.s-42"),
        ("engagement", "s-42", "results.engagement.s-42"),
    ],
)
def test_result_filters(metric: str | None, student: str | None, subjects: str) -> None:
    assert result_filter(metric, student) == subjects


def test_a_filter_refuses_a_metric_name_that_could_address_other_subjects() -> None:
    with pytest.raises(ConfigError, match="a metric's name"):
        result_filter("a.>")


# bridges/public/streams.py still spells these facts itself (its owner is changing the module
# right now; the next phase makes it import them from here). Until then they must agree.
@pytest.mark.parametrize("name", ["DEADLETTER_INVALID", "METRICS_BUCKET"])
def test_the_public_streams_copies_agree(name: str) -> None:
    assert getattr(streams, name) == getattr(names, name)


@pytest.mark.parametrize("value", [*GOOD_IDS, *BAD_IDS])
def test_the_public_streams_id_rule_agrees(value: str) -> None:
    def outcome(function, *args):  # type: ignore[no-untyped-def]
        try:
            return function(*args)
        except ConfigError as exc:
            return str(exc)

    assert outcome(streams.require_id, "student_id", value) == outcome(require_id, "student_id", value)
    assert outcome(streams.ingest_subject, "game", value) == outcome(ingest_subject, "game", value)
