"""TopicSpec: every topic bounded by its kind's defaults or its own, and the registry's JSON
read and written compatibly with processes of other versions."""

from __future__ import annotations

import json

import pytest

from bridges.limits import Limits
from bridges.transport.topics import DEFAULT_CHANGELOG_MAX_BYTES, DEFAULT_TOPIC_RETENTION, TopicSpec
from tables.errors import ConfigError


@pytest.mark.parametrize(
    ("spec", "limits", "ages_out"),
    [
        pytest.param(TopicSpec("orders", 1), Limits(DEFAULT_TOPIC_RETENTION), True, id="ordinary-default"),
        pytest.param(TopicSpec("orders", 1, retention=3600), Limits(3600), True, id="ordinary-own-age"),
        pytest.param(
            TopicSpec("orders", 1, max_bytes=1 << 30), Limits(DEFAULT_TOPIC_RETENTION, 1 << 30), True,
            id="ordinary-byte-cap",
        ),
        pytest.param(
            TopicSpec("tbl", 1, compacting=True), Limits(0.0, DEFAULT_CHANGELOG_MAX_BYTES), False,
            id="changelog-default",
        ),
        pytest.param(
            TopicSpec("tbl", 1, compacting=True, retention=1.0), Limits(1.0, DEFAULT_CHANGELOG_MAX_BYTES), True,
            id="windowed-changelog-expires-1s",
        ),
        pytest.param(
            TopicSpec("tbl", 1, compacting=True, max_bytes=1 << 20), Limits(0.0, 1 << 20), False,
            id="changelog-own-cap",
        ),
    ],
)
def test_every_topic_has_a_bound(spec: TopicSpec, limits: Limits, ages_out: bool) -> None:
    assert spec.limits() == limits
    assert spec.ages_out is ages_out


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retention": 0.0},  # an ordinary topic kept forever
        {"compacting": True, "max_bytes": -1},  # a changelog without an age or a byte cap
        {"max_bytes": 0},
    ],
)
def test_a_topic_without_a_bound_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        TopicSpec("t", 1, **kwargs)  # type: ignore[arg-type]


def test_the_stored_json_holds_the_fields_every_version_reads() -> None:
    spec = TopicSpec("orders", 3, max_bytes=1 << 30)
    stored = json.loads(spec.to_json())
    # An older process builds TopicSpec(**stored): a key it does not know would crash it.
    assert "max_bytes" not in stored
    assert TopicSpec.from_json(spec.to_json()) == TopicSpec("orders", 3)


def test_json_from_another_version_is_read() -> None:
    older = b'{"name":"orders","partitions":2,"compacting":false,"max_per_key":1,"retention":null,"replicas":1}'
    newer = b'{"name":"orders","partitions":2,"shards":4,"placement":"eu"}'
    assert TopicSpec.from_json(older) == TopicSpec("orders", 2)
    assert TopicSpec.from_json(newer) == TopicSpec("orders", 2)
