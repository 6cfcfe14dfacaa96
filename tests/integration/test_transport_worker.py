"""The nats:// transport end to end: faust's own CLI workers against a real nats-server."""

from __future__ import annotations

import collections
import json
from collections.abc import Awaitable
from pathlib import Path

import pytest

from bridges.server import NatsServer, free_port
from testkit.producer import faust_producer
from testkit.workers import Workers, poll_until, read_jsonl

pytestmark = pytest.mark.integration

APP = "tests.apps.counter"


def seen(seen_dir: Path) -> list[dict]:
    return [row for path in sorted(seen_dir.glob("*.jsonl")) for row in read_jsonl(path)]


def processed(seen_dir: Path, topic: str = "numbers") -> list[dict]:
    return [row for row in seen(seen_dir) if row.get("t") == topic]


@pytest.fixture
def seen_dir(tmp_path: Path) -> Path:
    path = tmp_path / "seen"
    path.mkdir()
    return path


@pytest.fixture
def workers(tmp_path: Path, nats_server: NatsServer, seen_dir: Path):
    with Workers(tmp_path / "logs", {"BROKER": nats_server.url, "SEEN_DIR": str(seen_dir)}) as pool:
        yield pool


async def test_every_message_once_in_order_with_keys_headers_timestamps(
    nats_server: NatsServer, workers: Workers, seen_dir: Path
) -> None:
    worker = workers.faust(APP)
    await worker.wait_for_log(r"Worker ready", timeout=60)
    sent = []
    async with faust_producer(nats_server.url) as send:
        for i in range(400):
            key = f"key-{i % 7}".encode()
            headers = [("trace", f"t{i}".encode()), ("trace", b"dup-name")]
            meta = await send("numbers", str(i + 1).encode(), key=key, timestamp=1_700_000_000.25 + i, headers=headers)
            sent.append((meta.partition, meta.offset, key.decode(), i + 1, 1_700_000_000.25 + i))
    rows = await poll_until(
        lambda: (r := processed(seen_dir)) and len(r) >= len(sent) and r, timeout=30, what="all messages"
    )
    assert len(rows) == len(sent), "a message was processed more than once"
    got = {(r["p"], r["o"]): r for r in rows}
    for partition, offset, key, value, ts in sent:
        row = got[(partition, offset)]
        assert (row["k"], row["v"], row["ts"]) == (key, value, ts)
        assert row["h"] == [["trace", f"t{value - 1}"], ["trace", "dup-name"]]
    by_partition: dict[int, list[int]] = collections.defaultdict(list)
    for row in rows:
        by_partition[row["p"]].append(row["o"])
    for offsets in by_partition.values():
        assert offsets == sorted(offsets), "out of order within a partition"
    # One key's values arrive in the order they were sent.
    for key in {k for _, _, k, _, _ in sent}:
        assert [r["v"] for r in rows if r["k"] == key] == [v for _, _, k, v, _ in sent if k == key]


async def test_group_by_repartitions_through_the_transport(
    nats_server: NatsServer, workers: Workers, seen_dir: Path
) -> None:
    worker = workers.faust(APP)
    await worker.wait_for_log(r"Worker ready", timeout=60)
    expected: collections.Counter[str] = collections.Counter()
    async with faust_producer(nats_server.url) as send:
        for i in range(120):
            user = f"user-{i % 5}"
            expected[user] += i
            # Keys unrelated to the user, so group_by really has to move messages.
            await send("clicks", json.dumps({"user": user, "n": i}).encode(), key=f"r{i}".encode())

    def totals() -> dict[str, int] | None:
        rows = [r for r in seen(seen_dir) if "user" in r]
        if len(rows) < 120:
            return None
        last: dict[str, int] = {}
        for row in rows:
            last[row["user"]] = row["user_total"]
        return last

    assert await poll_until(totals, timeout=30, what="regrouped clicks") == dict(expected)


async def test_sigterm_then_restart_resumes_from_committed_offsets(
    nats_server: NatsServer, workers: Workers, seen_dir: Path
) -> None:
    first = workers.faust(APP, name="first")
    await first.wait_for_log(r"Worker ready", timeout=60)
    async with faust_producer(nats_server.url) as send:
        await send.many("numbers", [(f"k{i % 3}".encode(), str(i + 1).encode()) for i in range(300)])
        await poll_until(lambda: len(processed(seen_dir)) >= 300, timeout=30, what="first batch")
        assert await first.terminate() == 0
        await send.many("numbers", [(f"k{i % 3}".encode(), str(i + 1).encode()) for i in range(300, 500)])
    second = workers.faust(APP, name="second")
    await second.wait_for_log(r"Worker ready", timeout=60)
    await poll_until(lambda: len(processed(seen_dir)) >= 500, timeout=30, what="second batch")
    rows = processed(seen_dir)
    positions = [(r["p"], r["o"]) for r in rows]
    assert len(positions) == len(set(positions)) == 500, "lost or re-delivered after a clean stop"
    assert {r["w"] for r in rows if r["v"] > 300} == {"second"}


async def test_sigkill_loses_nothing_and_the_table_is_rebuilt_from_its_changelog(
    nats_server: NatsServer, workers: Workers, seen_dir: Path
) -> None:
    first = workers.faust(APP, name="first")
    await first.wait_for_log(r"Worker ready", timeout=60)
    keys = [f"k{i}" for i in range(6)]
    items = [(keys[i % 6].encode(), str(i + 1).encode()) for i in range(600)]
    sent = collections.Counter()
    for key, value in items:
        sent[key.decode()] += int(value)
    async with faust_producer(nats_server.url) as send:
        metas = await send.many("numbers", items)
        await poll_until(lambda: len(processed(seen_dir)) >= 300, timeout=30, what="half the messages")
        await first.kill()
        second = workers.faust(APP, name="second")
        await second.wait_for_log(r"Worker ready", timeout=60)
        everything = {(m.partition, m.offset) for m in metas}
        await poll_until(
            lambda: {(r["p"], r["o"]) for r in processed(seen_dir)} >= everything,
            timeout=30,
            what="every message processed at least once",
        )
        await send.many("numbers", [(key.encode(), b"0") for key in keys])
    probes = await poll_until(
        lambda: (p := {r["probe"]: r["total"] for r in seen(seen_dir) if "probe" in r}) and len(p) == 6 and p,
        timeout=30,
        what="the rebuilt table's totals",
    )
    # Changelog writes are pipelined and flushed at each commit: give them a moment to land.
    await poll_until(
        lambda: _equal(changelog_values(nats_server.url, "counter-totals-changelog", keys), probes),
        timeout=20,
        what="the changelog to hold exactly the table's values",
    )
    rows = processed(seen_dir)
    twice = collections.Counter((r["p"], r["o"]) for r in rows)
    for key in keys:
        replayed = sum(r["v"] for r in rows if r["k"] == key and twice[(r["p"], r["o"])] > 1 and r["w"] == "second")
        # at-least-once: a total may exceed the input only by values processed a second time
        assert sent[key] <= probes[key] <= sent[key] + replayed, (key, probes[key], sent[key], replayed)


async def _equal(values: Awaitable[dict[str, int]], expected: dict[str, int]) -> bool:
    return await values == expected


async def changelog_values(url: str, topic: str, keys: list[str]) -> dict[str, int]:
    """The last value of each key in a changelog topic, read straight from its streams."""
    import nats
    from nats.js.errors import NotFoundError

    from bridges.naming import Naming

    naming = Naming()
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        out: dict[str, int] = {}
        for key in keys:
            for partition in range(4):
                try:
                    # tables serialize str keys as JSON
                    subject = naming.key_subject(topic, partition, json.dumps(key).encode())
                    msg = await js.get_last_msg(naming.stream(topic, partition), subject)
                except NotFoundError:
                    continue
                out[key] = json.loads(msg.data)
        return out
    finally:
        await client.close()


async def test_an_undecodable_value_is_logged_with_its_position_and_skipped(
    nats_server: NatsServer, workers: Workers, seen_dir: Path
) -> None:
    worker = workers.faust(APP)
    await worker.wait_for_log(r"Worker ready", timeout=60)
    async with faust_producer(nats_server.url) as send:
        bad = await send("numbers", b"{not json", key=b"k1", partition=2)
        good = await send("numbers", b"5", key=b"k1", partition=2)
    rows = await poll_until(lambda: processed(seen_dir), timeout=30, what="the message after the bad one")
    assert [(r["p"], r["o"], r["v"]) for r in rows] == [(2, good.offset, 5)]
    await worker.wait_for_log(
        rf"skipping message numbers\[2\] offset {bad.offset}: its value cannot be decoded", timeout=10
    )
    assert "Crashed" not in worker.log(), "the agent crashed instead of skipping the message"
    assert worker.alive()


async def test_nats_unreachable_at_start_is_named_and_retried_until_it_appears(
    tmp_path: Path, seen_dir: Path
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    with Workers(tmp_path / "logs", {"BROKER": url, "SEEN_DIR": str(seen_dir)}) as pool:
        worker = pool.faust(APP)
        await worker.wait_for_log(rf"NATS not reachable at {url} \(attempt 1\).*retrying in 0\.2s", timeout=30)
        await worker.wait_for_log(rf"NATS not reachable at {url} \(attempt 3\).*retrying in 1\.0s", timeout=30)
        assert "Traceback" not in worker.log()
        async with NatsServer(tmp_path / "late-nats", port=port) as server:
            await worker.wait_for_log(r"Worker ready", timeout=60)
            async with faust_producer(server.url) as send:
                meta = await send("numbers", b"7", key=b"k")
            rows = await poll_until(lambda: processed(seen_dir), timeout=30, what="a message")
            assert [(r["p"], r["o"], r["v"]) for r in rows] == [(meta.partition, meta.offset, 7)]


async def test_nats_unreachable_past_the_deadline_fails_with_a_clear_error(
    tmp_path: Path, seen_dir: Path
) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    with Workers(tmp_path / "logs", {"BROKER": f"{url}?connect_deadline=2", "SEEN_DIR": str(seen_dir)}) as pool:
        worker = pool.faust(APP)
        assert await worker.wait_exit(timeout=60) != 0
        assert f"cannot connect to NATS at {url} within 2s" in worker.log()


@pytest.mark.parametrize("graceful", [True, False], ids=["restart", "kill-and-restart"])
async def test_worker_rides_out_a_nats_restart_without_loss(
    nats_server: NatsServer, workers: Workers, seen_dir: Path, graceful: bool
) -> None:
    worker = workers.faust(APP)
    await worker.wait_for_log(r"Worker ready", timeout=60)
    async with faust_producer(nats_server.url) as send:
        before = await send.many("numbers", [(b"k", b"1")] * 200)
        await poll_until(lambda: len(processed(seen_dir)) >= 200, timeout=30, what="messages before the restart")
        await nats_server.restart(graceful=graceful)
        await worker.wait_for_log(r"NATS reconnected", timeout=30)
        after = await send.many("numbers", [(b"k", b"2")] * 200)
    expected = {(m.partition, m.offset) for m in before + after}
    await poll_until(
        lambda: {(r["p"], r["o"]) for r in processed(seen_dir)} >= expected,
        timeout=60,
        what="every message after the restart",
    )
    assert worker.alive()
