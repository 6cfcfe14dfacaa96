"""Fixtures of the publisher's unit tests: a fake NATS client and a clock the tests move."""

from __future__ import annotations

import pytest

import bridges.transport.publisher
from tests.unit.bridges.fake_nats import FakeMonotonic, FakeNats


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    """The publisher's monotonic clock, moved by hand (its resend deadlines read it)."""
    clock = FakeMonotonic()
    monkeypatch.setattr(bridges.transport.publisher, "time", clock)
    return clock


@pytest.fixture
def fake() -> FakeNats:
    return FakeNats()
