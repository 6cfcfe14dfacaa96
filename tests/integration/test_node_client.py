"""The Node.js example of docs/client.md ("From any language") reads, with the official ``nats``
package, the same results the Python client reads: from a durable consumer on the results stream
and from the metrics bucket by key.

``examples/node/results.mjs`` runs as a reader would run it, with the packages its
``package-lock.json`` pins (installed by ``npm ci`` once per lock, into pytest's cache), against
a nats-server holding the results of the document's story: once on a server without accounts
and once as the ``reader`` role of ``deploy/nats-accounts.conf``. Skipped, saying why, where node
or npm is missing or the npm registry cannot be reached.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from bridges.server import NatsServer
from deploy.nats_permissions import ROLES
from testkit.docs import blocks
from testkit.metrics import publish_results, put_results
from testkit.oracle import expected_results
from testkit.workers import REPO

from .test_docs import CLIENT_EVENTS, in_window_order

# The first test also installs the example's packages when the cache does not hold them yet.
INSTALL_SECONDS = 120
pytestmark = [pytest.mark.integration, pytest.mark.timeout(INSTALL_SECONDS + 60)]

EXAMPLE = REPO / "examples" / "node"
SCRIPT = EXAMPLE / "results.mjs"
CLIENT_DOC = REPO / "docs" / "client.md"
RESULTS = in_window_order(expected_results(CLIENT_EVENTS))
KV_KEY = "engagement.s-42.1714557660"  # the key the example reads
DURABLE = "adaptive-engine-s-42"
# npm's codes for a registry it cannot reach (no network, no DNS, a proxy in the way).
OFFLINE = re.compile(r"\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH)\b")


@pytest.fixture(scope="session")
def node_example(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the example and the packages its lock pins: installed once per lock."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: the Node.js example of docs/client.md cannot run")
    lock = (EXAMPLE / "package.json").read_bytes() + (EXAMPLE / "package-lock.json").read_bytes()
    cache_provider = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    cache = cache_provider.mkdir("node-example") if cache_provider else tmp_path_factory.mktemp("node-example")
    ready = cache / hashlib.sha256(lock).hexdigest()[:16]
    if not (ready / "node_modules").is_dir():
        building = cache / f"{ready.name}.{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        for name in ("package.json", "package-lock.json"):
            shutil.copy(EXAMPLE / name, building / name)
        try:
            # One retry, and no request waiting longer than 30s (npm's default is 5 minutes).
            done = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--fetch-retries=1",
                 "--fetch-timeout=30000", "--fetch-retry-maxtimeout=10000"],
                cwd=building, capture_output=True, text=True, timeout=INSTALL_SECONDS, check=False,
            )
        except subprocess.TimeoutExpired:
            shutil.rmtree(building, ignore_errors=True)
            pytest.skip(f"npm ci did not finish within {INSTALL_SECONDS}s: is the npm registry reachable?")
        if done.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            offline = OFFLINE.search(done.stdout + done.stderr)
            if offline:
                pytest.skip(f"npm cannot reach its registry ({offline.group(1)}): the Node.js example cannot be installed")
            pytest.fail(f"npm ci failed in a copy of examples/node:\n{done.stderr}")
        if (ready / "node_modules").is_dir():  # another run got there first
            shutil.rmtree(building, ignore_errors=True)
        else:
            shutil.rmtree(ready, ignore_errors=True)
            building.rename(ready)
    shutil.copy(SCRIPT, ready / SCRIPT.name)  # the example as it is now, whatever the lock
    return ready / SCRIPT.name


@dataclass(frozen=True)
class Deployment:
    server: NatsServer
    #: how the project's processes would reach it (user, password, inbox prefix), by role
    env: dict[str, dict[str, str]]

    async def client(self, role: str) -> Client:
        env = self.env[role]
        options: dict[str, Any] = {}
        if env:
            options = {"user": env["NATS_USER"], "password": env["NATS_PASSWORD"], "inbox_prefix": env["NATS_INBOX_PREFIX"]}
        return await nats.connect(self.server.url, **options)


@pytest.fixture(params=["no-accounts", "reader-role"])
async def deployment(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deployment]:
    """A server holding the story's results, written as the workers write them."""
    if request.param == "no-accounts":
        config, env = None, {"worker": {}, "reader": {}}
    else:
        config, env = REPO / "deploy" / "nats-accounts.conf", {}
        for role in ROLES:
            password = f"pw-{role}-{secrets.token_urlsafe(12)}"
            monkeypatch.setenv(f"NATS_{role.upper()}_PASSWORD", password)  # nats-server reads them
            env[role] = {"NATS_USER": role, "NATS_PASSWORD": password, "NATS_INBOX_PREFIX": f"_INBOX_{role}"}
    async with NatsServer(tmp_path / "nats", config_file=config) as server:
        deployment = Deployment(server, env)
        writer = await deployment.client("worker")
        try:
            await put_results(writer, RESULTS)
            await publish_results(writer, RESULTS)
        finally:
            await writer.close()
        yield deployment


async def run_node(script: Path, env: dict[str, str], *, timeout: float = 60.0) -> str:
    """``node results.mjs`` as a reader runs it; its stdout (fails on exit != 0)."""
    process = await asyncio.create_subprocess_exec(
        # The caller's own NATS_* variables stay out: the example reads those names.
        "node", script.name, cwd=script.parent, env={**{k: v for k, v in os.environ.items() if not k.startswith("NATS_")}, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"node {script.name} did not finish within {timeout}s") from None
    assert process.returncode == 0, f"node {script.name} failed:\n{stderr.decode()}"
    return stdout.decode()


def printed(output: str) -> list[tuple[str, Any]]:
    """(subject or key, document) of each line the example prints."""
    return [(name, json.loads(document)) for name, _, document in (line.partition(" ") for line in output.splitlines())]


def documented() -> tuple[str, str]:
    """The example's code and output as docs/client.md shows them."""
    shown = blocks(CLIENT_DOC)
    (index,) = [i for i, block in enumerate(shown) if block.lang == "js"]
    assert shown[index + 1].lang == "text", "the Node.js example's output follows it"
    return shown[index].text, shown[index + 1].text


def test_the_document_shows_the_example_as_it_is() -> None:
    code, _ = documented()
    assert code == SCRIPT.read_text(encoding="utf-8")


async def test_the_example_reads_what_the_workers_stored(node_example: Path, deployment: Deployment) -> None:
    env = {"NATS_URL": deployment.server.url, **deployment.env["reader"]}
    published = [(f"results.{value['metric']}.s-42", value) for value in RESULTS.values()]

    first = await run_node(node_example, env)
    assert first == documented()[1]
    assert printed(first) == [*published[:2], (KV_KEY, RESULTS[KV_KEY])]
    # The consumer is durable and its acknowledgements reached the server: a second run goes on
    # from there.
    second = await run_node(node_example, env)
    assert printed(second) == [*published[2:4], (KV_KEY, RESULTS[KV_KEY])]
    client = await deployment.client("reader")
    try:
        info = await client.jetstream().consumer_info("FAUST_RESULTS", DURABLE)
    finally:
        await client.close()
    assert info.ack_floor.stream_seq == 4 and info.num_ack_pending == 0 and info.num_pending == 0
    assert "Violation" not in deployment.server.log_file.read_text(), "the reader role lacks a permission the example needs"
