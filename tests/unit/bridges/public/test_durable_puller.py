"""The puller's configuration: a request never asks for more than the buffer may hold."""

from __future__ import annotations

import pytest

from bridges.public.durable_puller import PullerConfig
from tables.errors import ConfigError


def test_defaults_leave_room_for_two_requests() -> None:
    config = PullerConfig()
    assert config.max_requests * config.batch <= config.capacity
    assert config.ack_wait > config.expires


@pytest.mark.parametrize(("batch", "capacity"), [(0, 10), (11, 10), (-1, 10)])
def test_a_batch_must_fit_the_capacity(batch: int, capacity: int) -> None:
    with pytest.raises(ConfigError, match="'batch'"):
        PullerConfig(batch=batch, capacity=capacity)
