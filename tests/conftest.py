"""Fixtures shared by every test tier.

Integration tests get their own nats-server per test: port 0, a temporary store, stopped when the
test ends, pass or fail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridges.server import NatsServer
from testkit.workers import forget_started_logs, started_log_tails


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    async with NatsServer(tmp_path / "nats") as server:
        yield server


def pytest_runtest_setup(item: pytest.Item) -> None:
    forget_started_logs()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report ends with the last lines of every worker it started."""
    report = yield
    if report.when == "call" and report.failed:
        tails = started_log_tails()
        if tails:
            report.sections.append(("worker logs, last lines", tails))
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each operation schemathesis makes a test of its own node id.

    schemathesis names the test of each API operation ``test[POST /v1/events]`` but, on pytest 9,
    leaves all of them the function's node id. pytest-xdist hands tests out by node id, so in a
    parallel run (``./dev test``) only the first operation's test was run; with the operation in
    the id, each is run, and reported, on its own. Any other repeated id stops the run.
    """
    for item in items:
        label: Any = getattr(item, "operation_label", None)
        node_id: Any = getattr(item, "_id", None)  # pytest 9's structured id: no public setter
        if isinstance(label, str) and node_id is not None and node_id.params is None:
            item._id = node_id.with_params(label)
    # Any other pair of tests sharing an id would lose one of them to a parallel run, silently.
    repeated = sorted(node_id for node_id, count in Counter(item.nodeid for item in items).items() if count > 1)
    if repeated:
        raise pytest.UsageError(f"tests share a node id (a parallel run would run one of each): {repeated[:5]}")
