"""Schemathesis against the served OpenAPI document: every operation, fuzzed.

A real ``python -m app nats`` and ``python -m app web`` run for the module (started and stopped
here, on free ports). For each generated request the API must answer with a status the document
lists for that operation, a body that fits its schema, never a 5xx (NATS is up), and requests the
document rules out must be refused. Requests the document allows but the contract refuses (an
``occurred_at`` more than 5 minutes ahead, the ``data`` rules of a named event) are refused with
422 and an error body, and a body over 1 MiB with 413, which is why "schema-conforming data is
accepted" is not among the checks.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.web.openapi import openapi_document
from testkit.workers import REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SCHEMA = schemathesis.openapi.from_dict(openapi_document())
# A request the document rules out may be refused for its size first: a batch past maxItems is
# often past the 1 MiB body limit as well, and that answer (413, documented) comes before any
# validation. schemathesis's default list of rejections lacks it.
_REJECTION = SCHEMA.config.checks.negative_data_rejection
_REJECTION.expected_statuses = [*_REJECTION.expected_statuses, "413"]


def _start(argv: list[str], env: dict[str, str], log: Path, pattern: str) -> tuple[subprocess.Popen[bytes], str]:
    """A subprocess of ours, and the first match of ``pattern`` in its output (polled, bounded)."""
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = re.search(pattern, log.read_text(errors="replace"))
        if match:
            return process, match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"{argv} did not print {pattern!r}:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def web_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("fuzz")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DATA_DIR": str(base / "data"), "PORT": "0", "PARTITIONS": "4"}
    started: list[subprocess.Popen[bytes]] = []
    try:
        nats, nats_url = _start(
            [sys.executable, "-m", "app", "nats", "--port", "0", "--store", str(base / "nats")],
            env, base / "nats.log", r"JetStream at (nats://\S+)",
        )
        started.append(nats)
        web, url = _start(
            [sys.executable, "-m", "app", "web"], {**env, "NATS_URL": nats_url}, base / "web.log",
            r"web listening on (http://\S+)",
        )
        started.append(web)
        yield url
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)


@SCHEMA.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case, web_url: str) -> None:
    case.call_and_validate(base_url=web_url, excluded_checks=[positive_data_acceptance])
