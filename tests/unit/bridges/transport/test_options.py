"""Transport options from the broker URL's query string: parsing, validation, what is ignored."""

from __future__ import annotations

from typing import Any

import pytest
from yarl import URL

from bridges.transport.options import TransportOptions
from tables.errors import ConfigError


def test_no_query_gives_the_defaults() -> None:
    assert TransportOptions.from_urls(["nats://127.0.0.1:4222"]) == TransportOptions()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("prefix=dev", {"prefix": "dev"}, id="str"),
        pytest.param("replicas=3", {"replicas": 3}, id="int"),
        pytest.param("session_timeout=9.5", {"session_timeout": 9.5}, id="float"),
        pytest.param("ack_timeout=2", {"ack_timeout": 2.0}, id="float-from-integer-text"),
        pytest.param("rebalance_delay=0", {"rebalance_delay": 0.0}, id="zero-delay"),
        pytest.param(
            "fetch_batch=64&fetch_capacity=64&max_in_flight=1&duplicate_window=30",
            {"fetch_batch": 64, "fetch_capacity": 64, "max_in_flight": 1, "duplicate_window": 30.0},
            id="several",
        ),
        pytest.param("replicas=1&replicas=5", {"replicas": 5}, id="repeated-last-wins"),
        pytest.param("topic_retention=3d", {"topic_retention": 3 * 86400.0}, id="retention-in-days"),
        pytest.param("topic_retention=90", {"topic_retention": 90.0}, id="retention-in-seconds"),
        pytest.param("topic_max_bytes=512M", {"topic_max_bytes": 512 << 20}, id="topic-bytes-with-a-unit"),
        pytest.param("topic_max_bytes=-1", {"topic_max_bytes": -1}, id="topic-bytes-unlimited"),
        pytest.param("changelog_max_bytes=2G", {"changelog_max_bytes": 2 << 30}, id="changelog-bytes"),
        pytest.param("changelog_max_bytes=1048576", {"changelog_max_bytes": 1 << 20}, id="changelog-plain-bytes"),
    ],
)
def test_options_are_parsed_and_typed(query: str, expected: dict[str, Any]) -> None:
    options = TransportOptions.from_urls([f"nats://h:4222?{query}"])
    for name, value in expected.items():
        got = getattr(options, name)
        assert (got, type(got)) == (value, type(value))


def test_options_from_several_urls_are_merged() -> None:
    options = TransportOptions.from_urls(
        [URL("nats://a:4222?replicas=3"), "nats://b:4222?session_timeout=8"]
    )
    assert (options.replicas, options.session_timeout) == (3, 8.0)


def test_connection_params_are_left_to_the_connection_settings() -> None:
    url = "tls://h:4222?creds=/x.creds&tls_ca=/ca.pem&tls_cert=/c.pem&tls_key=/k.pem&connect_deadline=5"
    assert TransportOptions.from_urls([url]) == TransportOptions()


def test_an_unknown_option_is_rejected_naming_it_and_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        TransportOptions.from_urls(["nats://h:4222?sesion_timeout=6"])
    assert (caught.value.field, caught.value.value) == ("sesion_timeout", "6")
    assert "'sesion_timeout'" in str(caught.value)
    assert "session_timeout" in caught.value.problem


@pytest.mark.parametrize(
    ("query", "field", "value"),
    [
        pytest.param("replicas=2", "replicas", 2, id="replicas-not-1-3-5"),
        pytest.param("replicas=three", "replicas", "three", id="replicas-not-a-number"),
        pytest.param("session_timeout=0", "session_timeout", 0.0, id="session-timeout-zero"),
        pytest.param("session_timeout=1.4", "session_timeout", 1.4, id="session-timeout-below-1.5"),
        pytest.param("session_timeout=soon", "session_timeout", "soon", id="session-timeout-text"),
        pytest.param("ack_timeout=-1", "ack_timeout", -1.0, id="ack-timeout-negative"),
        pytest.param("duplicate_window=0", "duplicate_window", 0.0, id="duplicate-window-zero"),
        pytest.param("rebalance_delay=-0.1", "rebalance_delay", -0.1, id="rebalance-delay-negative"),
        pytest.param("fetch_batch=0", "fetch_batch", 0, id="fetch-batch-zero"),
        pytest.param("fetch_batch=1.5", "fetch_batch", "1.5", id="fetch-batch-not-an-int"),
        pytest.param("fetch_capacity=0", "fetch_capacity", 0, id="fetch-capacity-zero"),
        pytest.param("fetch_capacity=100", "fetch_capacity", 100, id="capacity-below-batch"),
        pytest.param("max_in_flight=0", "max_in_flight", 0, id="max-in-flight-zero"),
        pytest.param("topic_retention=0", "topic_retention", 0.0, id="topic-kept-forever"),
        pytest.param("topic_retention=7x", "topic_retention", "7x", id="retention-not-a-duration"),
        pytest.param("topic_max_bytes=0", "topic_max_bytes", 0, id="topic-bytes-zero"),
        pytest.param("topic_max_bytes=10Q", "topic_max_bytes", "10Q", id="topic-bytes-not-a-size"),
        pytest.param("changelog_max_bytes=-1", "changelog_max_bytes", -1, id="changelog-unbounded"),
    ],
)
def test_invalid_options_name_the_option_and_the_value(query: str, field: str, value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        TransportOptions.from_urls([f"nats://h:4222?{query}"])
    error = caught.value
    assert (error.field, error.value) == (field, value)
    assert f"Broker option {field!r} has value {value!r}" in str(error)


@pytest.mark.parametrize("field", ["session_timeout", "rebalance_delay", "ack_timeout", "duplicate_window"])
def test_nan_is_rejected_naming_the_option(field: str) -> None:
    # float("nan") compares False with everything, so "<= 0" style checks let it through.
    with pytest.raises(ConfigError) as caught:
        TransportOptions.from_urls([f"nats://h:4222?{field}=nan"])
    assert caught.value.field == field


def test_the_defaults_bound_every_topic() -> None:
    options = TransportOptions()
    assert options.topic_retention == 7 * 86400.0
    assert options.topic_max_bytes == -1  # the age bounds an ordinary topic
    assert options.changelog_max_bytes == 1 << 30  # a changelog has no age: bytes bound it


def test_a_misspelt_size_says_how_to_write_one() -> None:
    with pytest.raises(ConfigError) as caught:
        TransportOptions.from_urls(["nats://h:4222?changelog_max_bytes=lots"])
    assert "a size: bytes or 512M, 10G" in caught.value.problem
