"""The examples of docs/api.md and docs/client.md run, and answer what the documents show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from nats.aio.client import Client

from app.web.models import ErrorBody
from bridges.public.streams import INGEST_CONSUMER
from bridges.server import NatsServer
from contract.results import parse_result
from testkit.docs import (
    DOCS_HTTP,
    DOCS_NATS,
    Example,
    HttpAnswer,
    blocks,
    examples,
    parse_answer,
    parse_curl,
    run_python,
    send,
)
from testkit.metrics import publish_results, put_results
from testkit.oracle import expected_results
from testkit.streams import nats_client, stored_events
from testkit.web import WebHarness, running_web
from testkit.workers import REPO, poll_until

pytestmark = pytest.mark.integration

DOCS = REPO / "docs"


def at(clock: str) -> str:
    return f"2024-05-01T{clock}Z"


def event(n: int, type_: str, name: str, clock: str, data: dict[str, Any], **extra: str) -> dict[str, Any]:
    return {"event_id": f"doc-{n}", "student_id": "s-42", "type": type_, "name": name,
            "occurred_at": at(clock), "data": data, **extra}


# The story docs/client.md tells: one student's first two minutes.
CLIENT_EVENTS = [
    event(1, "game", "level_completed", "10:00:10", {"level": 1, "score": 50, "duration_ms": 9000}, game_id="g-math"),
    event(2, "engagement", "heartbeat", "10:00:15", {"seconds": 30}),
    event(3, "game", "game_finished", "10:00:40", {"outcome": "win", "score": 50, "duration_ms": 40000}, game_id="g-math"),
    event(4, "engagement", "heartbeat", "10:00:45", {"seconds": 30}),
    event(5, "interaction", "answer_submitted", "10:01:05", {"correct": True}),
    event(6, "interaction", "answer_submitted", "10:01:20", {"correct": False}),
    event(7, "interaction", "answer_submitted", "10:01:40", {"correct": False}),
]


# The window docs/client.md shows still open: in KV with its value so far, "final": false, as the
# workers write it with METRICS_UPDATE_SECONDS (after the closed windows, and on no result subject).
CLIENT_OPEN_EVENTS = [event(8, "interaction", "answer_submitted", "10:02:05", {"correct": True})]


def in_window_order(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Results by window start, then metric: the order the document's output assumes."""
    return dict(sorted(results.items(), key=lambda item: (item[1]["window"]["start"], item[1]["metric"])))


async def stand_in_for_the_workers(client: Client) -> None:
    """Write what the metric workers would: results of every event stored so far, once NATS
    ingest has nothing left to do (the workers themselves are tested elsewhere)."""

    async def ingest_idle() -> bool:
        info = await client.jetstream().consumer_info("FAUST_INGEST", INGEST_CONSUMER)
        return info.num_pending == 0 and info.num_ack_pending == 0

    await poll_until(ingest_idle, timeout=20, what="NATS ingest to finish")
    # Each event once, as the windows count them (a copy may be stored more than once).
    stored = {(i.event["student_id"], i.event["event_id"]): i.event for i in await stored_events(client)}
    results = expected_results(list(stored.values()))
    await put_results(client, results)
    await publish_results(client, results)


def check_answer(example: Example, answer: HttpAnswer) -> None:
    where = f"docs example at line {example.block.line}"
    if example.expected is None:
        assert 200 <= answer.status < 300, (where, answer)
        return
    shown = parse_answer(example.expected.text)
    assert answer.status == shown.status, (where, answer.body)
    for name, value in shown.headers.items():
        assert answer.headers.get(name) == value, (where, name)
    assert answer.body == shown.body, where


async def run_document(path: Path, web: WebHarness, nats_url: str, *, before_results: Any = None) -> int:
    base = str(web.http.make_url("")).rstrip("/")
    replacements = {DOCS_NATS: nats_url, DOCS_HTTP: base}
    ran = 0
    async with ClientSession() as session:
        for example in examples(path):
            text = example.block.text
            if before_results is not None and ('key_value("metrics")' in text or "/v1/metrics/" in text):
                await before_results()
                before_results = None
            if example.block.lang == "sh":
                check_answer(example, await send(session, parse_curl(text, base)))
            else:
                output = await run_python(text, replacements)
                if example.expected is not None:
                    assert output == example.expected.text, f"output of the example at line {example.block.line}"
            ran += 1
    return ran


async def test_the_api_document_runs(nats_server: NatsServer) -> None:
    async with running_web(nats_server.url, token="demo-token") as web, nats_client(nats_server.url) as client:

        async def results() -> None:
            await stand_in_for_the_workers(client)

        ran = await run_document(DOCS / "api.md", web, nats_server.url, before_results=results)
    assert ran >= 15


async def test_the_client_document_runs(nats_server: NatsServer) -> None:
    results = in_window_order(expected_results(CLIENT_EVENTS))
    still_open = {key: {**value, "final": False} for key, value in expected_results(CLIENT_OPEN_EVENTS).items()}
    async with nats_client(nats_server.url) as client:
        await put_results(client, results)
        await publish_results(client, results)
        await put_results(client, still_open)
    async with running_web(nats_server.url) as web:
        ran = await run_document(DOCS / "client.md", web, nats_server.url)
    assert ran == 4


@pytest.mark.parametrize("name", ["api.md", "client.md"])
def test_every_json_block_is_a_result_or_an_error(name: str) -> None:
    shown = [block for block in blocks(DOCS / name) if block.lang == "json"]
    for block in shown:
        document = json.loads(block.text)
        if "errors" in document:
            ErrorBody.model_validate(document)
        else:
            parse_result(json.dumps(document))


def test_every_example_is_runnable_or_shows_a_result() -> None:
    for name in ("api.md", "client.md"):
        for block in blocks(DOCS / name):
            # js: the Node.js example, run by test_node_client.py
            assert block.lang in {"sh", "http", "python", "text", "json", "js"}, (name, block.line, block.lang)
            if block.lang == "sh":
                assert block.text.lstrip().startswith("curl "), (name, block.line)
