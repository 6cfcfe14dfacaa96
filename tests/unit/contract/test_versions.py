"""A metric's versions: their series, which one readers take, and what documents say."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from agents.windowed.documents import failed_document, result_address, result_document
from bridges.public.version_progress import remaining_records
from bridges.transport.lag import PartitionLag
from contract.names import metric_series, parse_metrics_key, parse_series
from contract.registry import Backfill, MetricDescription, MetricVersion, WindowDescription, default_version
from contract.results import MetricResult, parse_result
from contract.typed.engagement import RESULT as ENGAGEMENT
from tables import ClosedWindow, FailedWindow
from tables.errors import ConfigError

T0 = datetime(2024, 5, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(("metric", "version", "series"), [("hints", 1, "hints"), ("hints", 2, "hints_v2"), ("a-b", 12, "a-b_v12")])
def test_a_series_names_its_version_and_reads_back(metric: str, version: int, series: str) -> None:
    assert metric_series(metric, version) == series
    assert parse_series(series) == (metric, version)


@pytest.mark.parametrize("token", ["hints", "hints_v1", "hints_v01", "_v2", "hints_vx", "v2"])
def test_anything_else_reads_as_a_version_1(token: str) -> None:
    assert parse_series(token) == (token, 1)


@pytest.mark.parametrize(
    ("metric", "version", "field"),
    [("hints_v2", 1, "name"), ("hints_v2", 3, "name"), ("hints", 0, "version"), ("hints", True, "version"),
     ("x" * 63, 2, "name"), ("hi.nts", 2, "metric")],
)
def test_a_series_that_could_be_misread_is_refused_naming_the_field(metric: str, version: int, field: str) -> None:
    with pytest.raises(ConfigError) as refused:
        metric_series(metric, version)
    assert refused.value.field == field


def test_two_versions_never_share_a_key_or_a_subject() -> None:
    window = ClosedWindow("hints", {"student_id": "s1"}, 120.0, 180.0, 3, {"hints": 3})
    assert result_address(window) == ("hints.s1.120", "results.hints.s1")
    assert result_address(window, "hints_v2") == ("hints_v2.s1.120", "results.hints_v2.s1")
    assert parse_metrics_key("hints_v2.s1.120") == ("hints_v2", ("s1",), 120)


def test_a_document_says_its_version_from_version_2_on_and_its_reader_finds_its_key() -> None:
    window = ClosedWindow("hints", {"student_id": "s1"}, 120.0, 180.0, 3, {"hints": 3})
    assert "version" not in result_document(window)
    document = result_document(window, 2)
    assert document["version"] == 2
    result = parse_result(json.dumps(document))
    assert (result.version, result.series, result.kv_key, result.subject) == (2, "hints_v2", "hints_v2.s1.120", "results.hints_v2.s1")
    assert json.loads(result.to_json_bytes())["version"] == 2
    assert "version" not in json.loads(parse_result(json.dumps(result_document(window))).to_json_bytes())
    failed = FailedWindow("hints", {"student_id": "s1"}, 120.0, 180.0, 3, "ValueError: x")
    assert failed_document(failed, 3)["version"] == 3


def test_a_typed_refinement_applies_to_the_version_it_was_written_for() -> None:
    document = {"metric": "engagement", "key": {"student_id": "s1"},
                "window": {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T10:01:00Z"}, "final": True,
                "events": 1, "values": {"interactions": 1, "answers": 0, "correct": 0, "accuracy": None,
                                        "active_seconds": 0, "sessions": 0}}
    assert type(parse_result(json.dumps(document))) is ENGAGEMENT
    # Version 2 may give its values another shape: read generically, never refused.
    assert type(parse_result(json.dumps({**document, "version": 2}))) is MetricResult


def _version(version: int, complete: bool | None) -> MetricVersion:
    description = MetricDescription(name="hints", version=version, key_fields=("student_id",),
                                    window=WindowDescription(kind="tumbling", size_seconds=60, step_seconds=60))
    backfill = None if complete is None else Backfill(
        series=description.series, started_at=T0, targets={0: 10}, remaining=0 if complete else 4, complete=complete,
    )
    return MetricVersion(description=description, backfill=backfill)


@pytest.mark.parametrize(
    ("states", "chosen"),
    [
        ([None], 1),  # ran before versions were tracked: complete
        ([True, False], 1),  # version 2 still going through the stored events
        ([True, True], 2),
        ([None, True, False], 2),
        ([False], 1),  # a new metric, still backfilling: better than nothing
        ([False, False], 2),
    ],
)
def test_readers_take_the_newest_complete_version_else_the_newest(states: list[bool | None], chosen: int) -> None:
    versions = [_version(n, state) for n, state in enumerate(states, start=1)]
    picked = default_version(list(reversed(versions)))
    assert picked is not None and picked.description.version == chosen
    assert default_version([]) is None


def test_a_backfill_completes_once_and_for_good() -> None:
    record = Backfill(series="hints_v2", started_at=T0, targets={0: 10, 1: 5}, remaining=13)
    counted = record.counted(4, T0)
    assert (counted.remaining, counted.complete, counted.completed_at) == (4, False, None)
    done = counted.counted(0, T0)
    assert (done.complete, done.completed_at) == (True, T0)
    assert done.counted(7, T0) == done  # a later count (records aged out, new partitions) changes nothing
    assert Backfill.parse(done.to_json_bytes()) == done


def _lag(partition: int, earliest: int, end: int, committed: int | None) -> PartitionLag:
    return PartitionLag("hints_v2", "events", partition, earliest, end, committed)


def test_remaining_records_count_up_to_each_partitions_target_only() -> None:
    targets = {0: 100, 1: 50}
    # Nothing committed yet: every stored record before the target.
    assert remaining_records(targets, [_lag(0, 1, 300, None), _lag(1, 1, 60, None)]) == 99 + 49
    # Committed past the target: done there, whatever came after it.
    assert remaining_records(targets, [_lag(0, 1, 300, 250), _lag(1, 1, 60, 40)]) == 10
    # Records aged out of the stream cannot be read by anyone: not waited for.
    assert remaining_records(targets, [_lag(0, 120, 300, None), _lag(1, 45, 60, None)]) == 5
    # A partition added after the version started is not part of its backfill.
    assert remaining_records(targets, [_lag(0, 1, 300, 100), _lag(1, 1, 60, 50), _lag(2, 1, 9, None)]) == 0
