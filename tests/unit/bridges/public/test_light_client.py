"""Reading results loads neither faust nor aiokafka (issue 15): a service that only reacts to
results should not pay for a stream processor's import time, nor depend on its versions.

Each case imports in a fresh interpreter, since this one has loaded faust long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from testkit.workers import REPO

HEAVY = ("faust", "aiokafka")


def loaded_after(code: str) -> set[str]:
    """Which of :data:`HEAVY` a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(set(sys.modules) & {set(HEAVY)!r})))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("from bridges.public.results_client import ResultsClient", id="the-client"),
        pytest.param("from contract.results import parse_result", id="parse_result"),
        pytest.param(
            "from bridges.connection import ConnectionSettings\n"
            "from bridges.public.metrics_reader import MetricsReader\n"
            "ConnectionSettings.from_urls('nats://user:pw@h:4222').with_credentials(None)",
            id="connecting-and-the-reader",
        ),
    ],
)
def test_reading_results_loads_neither_faust_nor_aiokafka(code: str) -> None:
    assert loaded_after(code) == set()


def test_the_probe_sees_faust_where_it_is_loaded() -> None:
    # NatsCredentials is a faust class; the old name still finds it, loading faust then.
    assert loaded_after("from bridges.connection import NatsCredentials") == set(HEAVY)
