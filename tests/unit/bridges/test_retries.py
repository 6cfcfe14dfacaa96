"""A group duty that keeps failing: pauses that double up to five seconds, and a log line at the
start and at the end of a run of failures, not one per failure."""

from __future__ import annotations

import logging

import pytest

from bridges.group.retries import Retries
from tables.errors import StorageFull


async def test_pauses_double_up_to_the_longest_and_a_run_is_logged_twice(caplog: pytest.LogCaptureFixture) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    retries = Retries("joining group g", sleep=sleep)
    full = StorageFull("$KV.faust_groups.g.members.m", "server", "insufficient resources")
    with caplog.at_level(logging.DEBUG, logger="bridges.group.retries"):
        for _ in range(6):
            await retries.failed(full)
        retries.succeeded()
        retries.succeeded()  # nothing failed since: nothing to say
    assert slept == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"joining group g failed ({full}); trying again",
        "joining group g works again after 6 failures",
    ]
    assert retries.pause() == 0.5
