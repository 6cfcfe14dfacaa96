"""The public names of the contract and the rules that keep ids from addressing other keys."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from bridges.limits import Limits
from bridges.public.streams import (
    DEADLETTER_INVALID,
    INGEST_CONSUMER,
    METRICS_BUCKET,
    PublicLimits,
    PublicStreams,
    ingest_subject,
    require_id,
)
from tables.errors import ConfigError
from tests.unit.contract.test_names import BAD_IDS


def test_the_contract_names() -> None:
    assert (DEADLETTER_INVALID, METRICS_BUCKET) == ("deadletter.invalid", "metrics")
    assert INGEST_CONSUMER == "web-ingest"
    assert ingest_subject("game", "s-42") == "events.game.s-42"


@pytest.mark.parametrize("value", ["s", "S-9_x", "x" * 64])
def test_valid_ids_pass(value: str) -> None:
    assert require_id("student_id", value) == value


@pytest.mark.parametrize("value", BAD_IDS)
def test_ids_that_could_address_other_subjects_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="'student_id'.*must be 1-64 characters of A-Z a-z 0-9 _ -"):
        require_id("student_id", value)


def test_stream_names_carry_the_prefix() -> None:
    streams = PublicStreams("learn", replicas=3)
    assert (streams.ingest, streams.deadletter, streams.results) == ("LEARN_INGEST", "LEARN_DEADLETTER", "LEARN_RESULTS")
    assert streams.ingest_config().num_replicas == 3


def test_the_ingest_stream_is_a_work_queue_without_a_size_limit() -> None:
    config = PublicStreams().ingest_config()
    assert config.subjects == ["events.>"]
    assert config.retention is RetentionPolicy.WORK_QUEUE
    assert config.storage is StorageType.FILE
    # An oversize event must reach the consumer to be dead-lettered, not vanish at the stream.
    assert config.max_msg_size in (None, -1)


def test_dead_letters_and_results_are_kept_by_limits() -> None:
    streams = PublicStreams()
    assert streams.deadletter_config().subjects == ["deadletter.>"]
    assert streams.results_config().subjects == ["results.>"]
    for config in (streams.deadletter_config(), streams.results_config()):
        assert config.retention is RetentionPolicy.LIMITS
        assert config.discard is DiscardPolicy.OLD


DAY = 24 * 3600


@pytest.mark.parametrize(
    ("config", "max_age", "max_bytes"),
    [
        pytest.param(PublicStreams.ingest_config, 7 * DAY, -1, id="ingest-7d"),
        pytest.param(PublicStreams.results_config, 7 * DAY, -1, id="results-7d"),
        pytest.param(PublicStreams.deadletter_config, 14 * DAY, -1, id="deadletter-14d"),
    ],
)
def test_the_default_limits_are_the_settings_defaults(
    config: Callable[[PublicStreams], StreamConfig], max_age: float, max_bytes: int
) -> None:
    got = config(PublicStreams())
    assert (got.max_age, got.max_bytes) == (max_age, max_bytes)


def test_each_stream_takes_its_own_limits() -> None:
    limits = PublicLimits(
        ingest=Limits(3600, 1 << 20), results=Limits(7200, 2 << 20), deadletter=Limits(10800, 3 << 20),
        metrics=Limits(60),
    )
    streams = PublicStreams(limits=limits)
    configs = (streams.ingest_config(), streams.results_config(), streams.deadletter_config())
    got = [(config.max_age, config.max_bytes) for config in configs]
    assert got == [(3600, 1 << 20), (7200, 2 << 20), (10800, 3 << 20)]


def test_the_metrics_bucket_needs_a_ttl() -> None:
    with pytest.raises(ConfigError, match="METRICS_TTL"):
        PublicLimits(metrics=Limits(0, 1 << 30))


@pytest.mark.parametrize("prefix", ["events", "results", "deadletter"])
def test_a_prefix_that_would_overlap_the_public_subjects_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigError, match="NATS_PREFIX"):
        PublicStreams(prefix)


@pytest.mark.parametrize(("prefix", "replicas"), [("Faust", 1), ("", 1), ("faust", 2)])
def test_bad_prefixes_and_replicas_are_refused(prefix: str, replicas: int) -> None:
    with pytest.raises(ConfigError):
        PublicStreams(prefix, replicas)
