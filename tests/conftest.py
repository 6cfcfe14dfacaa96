"""Fixtures shared by every test tier.

Integration tests get their own nats-server per test: port 0, a temporary store, stopped when the
test ends, pass or fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridges.server import NatsServer


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    async with NatsServer(tmp_path / "nats") as server:
        yield server
