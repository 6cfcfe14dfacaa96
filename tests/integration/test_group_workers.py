"""Scaling one agent by process count: real worker subprocesses sharing partitions over KV."""

from __future__ import annotations

import collections
import signal
import time
from pathlib import Path

import nats
import pytest

from bridges.naming import Naming
from bridges.server import NatsServer
from testkit.faust_logs import last_recovery_tables
from testkit.group import GroupState, read_group
from testkit.producer import faust_producer
from testkit.traffic import Sent, Traffic
from testkit.workers import WorkerProcess, Workers, poll_until, read_jsonl

pytestmark = pytest.mark.integration

APP = "tests.apps.counter"
GROUP = "counter"
TOPIC = "numbers"
PARTITIONS = 8
SESSION_TIMEOUT = 3.0
KEYS = [f"k{i}" for i in range(10)]


@pytest.fixture
def seen_dir(tmp_path: Path) -> Path:
    path = tmp_path / "seen"
    path.mkdir()
    return path


@pytest.fixture
def workers(tmp_path: Path, nats_server: NatsServer, seen_dir: Path):
    env = {
        "BROKER": f"{nats_server.url}?session_timeout={SESSION_TIMEOUT}",
        "SEEN_DIR": str(seen_dir),
        "PARTITIONS": str(PARTITIONS),
    }
    with Workers(tmp_path / "logs", env) as pool:
        yield pool


def rows(seen_dir: Path) -> list[dict]:
    return [r for path in sorted(seen_dir.glob("*.jsonl")) for r in read_jsonl(path)]


def member_of(state: GroupState, worker: WorkerProcess) -> str | None:
    ids = [m for m, record in state.members.items() if record.pid == worker.pid]
    return ids[0] if len(ids) == 1 else None


async def held_by(url: str, held: list[WorkerProcess], *, timeout: float) -> GroupState:
    """Wait until every partition is held by exactly one of ``held``, each holding some."""

    async def check() -> GroupState | None:
        state = await read_group(url, GROUP)
        ids = {member_of(state, w) for w in held}
        if None in ids or not state.fully_owned(TOPIC, PARTITIONS, by=ids):  # type: ignore[arg-type]
            return None
        if any(not state.partitions_of(m, TOPIC) for m in ids if m):
            return None
        return state

    names = ", ".join(w.name for w in held)
    try:
        return await poll_until(check, timeout=timeout, interval=0.1, what=f"partitions held by {names}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{await diagnose(url, held)}") from None


async def diagnose(url: str, workers: list[WorkerProcess]) -> str:
    """The group's state and every live worker's task stacks (mode prints them on SIGUSR1)."""
    state = await read_group(url, GROUP)
    lines = [f"generation {state.generation}; members:"]
    lines += [f"  {m}: pid {r.pid} acked {r.acked} applied {r.applied}" for m, r in state.members.items()]
    for worker in workers:
        if worker.alive():
            before = worker.log_count("STARTED TASKS|TASKS")
            worker.signal(signal.SIGUSR1)
            try:
                await poll_until(lambda w=worker, b=before: w.log_count("STARTED TASKS|TASKS") > b, timeout=5)
            except AssertionError:
                pass
        lines.append(f"--- {worker.name} (pid {worker.pid}) ---\n{worker.log()[-12000:]}")
    return "\n".join(lines)


def assert_one_owner_per_generation(processed: list[dict]) -> None:
    owners: dict[tuple[int, int], set[str]] = collections.defaultdict(set)
    for row in processed:
        owners[(row["g"], row["p"])].add(row["w"])
    shared = {gp: ws for gp, ws in owners.items() if len(ws) > 1}
    assert not shared, f"partitions processed by two workers in one generation: {shared}"


async def assert_everything_processed_and_totals(
    url: str, seen_dir: Path, sent: list[Sent]
) -> dict[str, int]:
    """At-least-once, and table totals equal to the input plus exactly what was replayed.

    Returns the overcount per key (faust tables are at-least-once: a message processed twice
    after a kill adds twice).
    """
    expected = {(s.partition, s.offset) for s in sent}
    await poll_until(
        lambda: {(r["p"], r["o"]) for r in rows(seen_dir) if r.get("t") == TOPIC} >= expected,
        timeout=60,
        what="every sent message to be processed",
    )
    async with faust_producer(url, partitions=PARTITIONS) as send:
        before = len([r for r in rows(seen_dir) if "probe" in r])
        await send.many(TOPIC, [(k.encode(), b"0") for k in KEYS])
    probes = await poll_until(
        lambda: (p := [r for r in rows(seen_dir) if "probe" in r])[before:] and len(p) - before >= len(KEYS) and p[before:],
        timeout=30,
        what="probe answers",
    )
    totals = {r["probe"]: r["total"] for r in probes}
    processed = [r for r in rows(seen_dir) if r.get("t") == TOPIC]
    times = collections.Counter((r["p"], r["o"]) for r in processed)
    inputs = collections.Counter()
    for s in sent:
        inputs[s.key] += s.value
    overcount = {}
    for key in KEYS:
        replayed = sum(r["v"] for r in processed if r["k"] == key and times[(r["p"], r["o"])] > 1) // 1
        assert inputs[key] <= totals[key], f"{key}: total {totals[key]} below input {inputs[key]}: lost updates"
        assert totals[key] - inputs[key] <= replayed, f"{key}: overcount beyond what was replayed"
        overcount[key] = totals[key] - inputs[key]
    return overcount


async def test_workers_share_partitions_and_take_over_on_join_leave_and_kill(
    nats_server: NatsServer, workers: Workers, seen_dir: Path
) -> None:
    url = nats_server.url
    w1, w2, w3 = (workers.faust(APP, name=f"w{i}") for i in (1, 2, 3))
    await held_by(url, [w1, w2, w3], timeout=60)
    async with faust_producer(url, partitions=PARTITIONS) as send, Traffic(send, TOPIC, KEYS) as traffic:
        await poll_until(lambda: len(traffic.sent) > 200, timeout=30, what="traffic")
        w4 = workers.faust(APP, name="w4")
        await held_by(url, [w1, w2, w3, w4], timeout=60)

        started = time.monotonic()
        w2.signal(signal.SIGTERM)
        await held_by(url, [w1, w3, w4], timeout=2.0)
        term_takeover = time.monotonic() - started
        assert await w2.wait_exit() == 0

        started = time.monotonic()
        await w3.kill()
        await held_by(url, [w1, w4], timeout=SESSION_TIMEOUT + 5)
        kill_takeover = time.monotonic() - started
        await poll_until(lambda: len(traffic.sent) > 2000, timeout=60, what="more traffic")
    overcount = await assert_everything_processed_and_totals(url, seen_dir, traffic.sent)
    assert_one_owner_per_generation([r for r in rows(seen_dir) if r.get("t") == TOPIC])
    print(f"takeover after SIGTERM {term_takeover:.2f}s, after SIGKILL {kill_takeover:.2f}s; overcount {overcount}")


async def test_a_paused_worker_is_fenced_and_rejoins_as_a_new_member(
    nats_server: NatsServer, workers: Workers, seen_dir: Path
) -> None:
    url = nats_server.url
    w1, w2 = workers.faust(APP, name="w1"), workers.faust(APP, name="w2")
    before = await held_by(url, [w1, w2], timeout=60)
    paused_member = member_of(before, w1)
    async with faust_producer(url, partitions=PARTITIONS) as send, Traffic(send, TOPIC, KEYS) as traffic:
        await poll_until(lambda: len(traffic.sent) > 200, timeout=30, what="traffic")
        w1.signal(signal.SIGSTOP)
        await held_by(url, [w2], timeout=SESSION_TIMEOUT + 25)
        # w2 processes and commits past what w1 had committed while w1 is frozen.
        await poll_until(lambda: len(traffic.sent) > 1200, timeout=30, what="traffic while paused")
        w1.signal(signal.SIGCONT)
        after = await held_by(url, [w1, w2], timeout=SESSION_TIMEOUT + 20)
        assert member_of(after, w1) != paused_member, "the paused worker came back under its old id"
        await poll_until(lambda: len(traffic.sent) > 2000, timeout=60, what="traffic after rejoin")
    await w1.wait_for_log(r"lost its membership", timeout=5)
    await assert_everything_processed_and_totals(url, seen_dir, traffic.sent)
    processed = [r for r in rows(seen_dir) if r.get("t") == TOPIC]
    assert_one_owner_per_generation(processed)
    # The only errors the paused worker may log are its own late writes being refused.
    log = w1.log()
    errors = [line for line in log.splitlines() if "Error:" in line or "Exception:" in line]
    assert all("fenced" in line for line in errors), errors
    refused = log.count("a newer owner has fenced this worker") + log.count("commits refused")
    print(f"late writes and commits refused after the pause: {refused}")


async def test_the_leader_dying_mid_rebalance_does_not_leave_the_group_stuck(
    nats_server: NatsServer, workers: Workers
) -> None:
    url = nats_server.url
    w1 = workers.faust(APP, name="w1")
    await held_by(url, [w1], timeout=60)
    w2 = workers.faust(APP, name="w2")
    # The state held_by checked, not a second read: a read is not one snapshot (the group's keys
    # are read one by one), and a second one once found neither worker leading, in a parallel run.
    state = await held_by(url, [w1, w2], timeout=60)
    leader = next(w for w in (w1, w2) if state.assignment and member_of(state, w) == state.assignment.leader)
    others = [w for w in (w1, w2) if w is not leader]
    generation = state.generation
    w3 = workers.faust(APP, name="w3")

    async def new_generation_written() -> bool:
        return (await read_group(url, GROUP)).generation > generation

    await poll_until(new_generation_written, timeout=60, interval=0.02, what="the leader to start a rebalance")
    await leader.kill()  # after it wrote the new generation, before the members finished it
    await held_by(url, [*others, w3], timeout=SESSION_TIMEOUT + 10)


@pytest.mark.parametrize("standbys", [1, 0], ids=["with-standby", "without-standby"])
async def test_a_standby_takes_over_without_replaying_the_whole_changelog(
    nats_server: NatsServer, tmp_path: Path, seen_dir: Path, standbys: int
) -> None:
    url = nats_server.url
    env = {
        "BROKER": f"{url}?session_timeout={SESSION_TIMEOUT}",
        "SEEN_DIR": str(seen_dir),
        "PARTITIONS": "4",
        "STANDBYS": str(standbys),
    }
    with Workers(tmp_path / "logs", env) as pool:
        w1, w2 = pool.faust(APP, name="w1"), pool.faust(APP, name="w2")
        state = await poll_until(
            lambda: _two_way_split(url), timeout=60, interval=0.2, what="both workers holding partitions"
        )
        keys = [f"key-{i}" for i in range(2000)]
        async with faust_producer(url, partitions=4) as send:
            for start in range(0, len(keys), 500):
                await send.many(TOPIC, [(k.encode(), b"1") for k in keys[start : start + 500]])
        await poll_until(lambda: len([r for r in rows(seen_dir) if r.get("t") == TOPIC]) >= len(keys), timeout=60)
        taken_over = state.partitions_of(member_of(state, w1) or "", TOPIC)
        generation = state.generation
        await w1.kill()
        # What the changelog holds now is what a full replay would read: w2 cannot take the
        # partitions over (and write to them) before the session timeout runs out.
        full = await changelog_records(url, taken_over)
        await poll_until(
            lambda: w2.log_count(r"generation id \d+ app consumers") >= 2 and "Worker ready" in w2.log().rsplit("generation id", 1)[1],
            timeout=SESSION_TIMEOUT + 20,
            what="w2 to take over and recover",
        )
    highwaters, starts = last_recovery_tables(w2.log(), "counter-totals-changelog")
    replayed = {p: highwaters[p] - starts[p] for p in taken_over}
    # A full replay reads every data record the changelog partition holds.
    assert generation >= 1 and taken_over and all(n >= 100 for n in full.values()), full
    if standbys:
        # Resumed from the standby copy: at most what was written after its last read.
        assert all(replayed[p] <= full[p] // 20 for p in taken_over), (replayed, full)
    else:
        assert replayed == full, (replayed, full)
    print(f"changelog records replayed at takeover ({standbys} standby): {replayed}")


async def changelog_records(url: str, partitions: set[int]) -> dict[int, int]:
    """Data records (fence markers excluded) in the counter table's changelog partitions."""
    naming, topic = Naming(), "counter-totals-changelog"
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        out = {}
        for p in partitions:
            info = await js.stream_info(naming.stream(topic, p), subjects_filter=naming.data_filter(topic, p, True))
            out[p] = sum((info.state.subjects or {}).values())
        return out
    finally:
        await client.close()


async def _two_way_split(url: str) -> GroupState | None:
    state = await read_group(url, GROUP)
    if len(state.members) == 2 and state.fully_owned(TOPIC, 4) and all(
        state.partitions_of(m, TOPIC) for m in state.members
    ):
        return state
    return None


async def readers(url: str) -> dict[int, set[str]]:
    """The readers of each partition of the source topic: the names of their pull consumers
    without the seek epoch (a reader keeps its name through seeks; one opened anew gets another)."""
    naming = Naming()
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        return {
            p: {info.name.rsplit("-", 1)[0] for info in await js.consumers_info(naming.stream(TOPIC, p))}
            for p in range(PARTITIONS)
        }
    finally:
        await client.close()


async def test_a_planned_rebalance_moves_only_what_moves_and_processes_nothing_twice(
    nats_server: NatsServer, workers: Workers, seen_dir: Path
) -> None:
    """A worker joining, and one leaving on SIGTERM, move partitions without replaying any: the
    revoke commits what was processed before faust forgets it, and the partitions that stay
    with their worker are not revoked at all: their readers are the same (issue 16)."""
    url = nats_server.url
    # The commit interval is far longer than the test, so only the revoke's commit can save the
    # work done since the previous commit from being processed again by the next owner.
    w1 = workers.faust(APP, name="w1", COMMIT_INTERVAL="60")
    await held_by(url, [w1], timeout=60)
    async with faust_producer(url, partitions=PARTITIONS) as send, Traffic(send, TOPIC, KEYS) as traffic:
        await poll_until(lambda: len(traffic.sent) > 300, timeout=30, what="traffic")
        before_join = await readers(url)
        w2 = workers.faust(APP, name="w2", COMMIT_INTERVAL="60")
        state = await held_by(url, [w1, w2], timeout=60)
        kept_by_w1 = state.partitions_of(member_of(state, w1) or "", TOPIC)
        moved_to_w2 = state.partitions_of(member_of(state, w2) or "", TOPIC)
        await poll_until(lambda: len(traffic.sent) > 900, timeout=30, what="traffic after the join")
        after_join = await readers(url)
        w1.signal(signal.SIGTERM)
        await held_by(url, [w2], timeout=30)
        assert await w1.wait_exit() == 0
        await poll_until(lambda: len(traffic.sent) > 1500, timeout=30, what="traffic after the leave")
        after_leave = await readers(url)
    for p in kept_by_w1:
        assert after_join[p] == before_join[p], f"w1's partition {p} was read anew after the join"
    for p in moved_to_w2:
        assert after_join[p].isdisjoint(before_join[p]), f"partition {p} moved to w2 but w1 still reads it"
        assert after_leave[p] == after_join[p], f"w2's partition {p} was read anew after w1 left"
    expected = {(s.partition, s.offset) for s in traffic.sent}
    await poll_until(
        lambda: {(r["p"], r["o"]) for r in rows(seen_dir) if r.get("t") == TOPIC} >= expected,
        timeout=60, what="every sent message to be processed",
    )
    processed = [r for r in rows(seen_dir) if r.get("t") == TOPIC]
    twice = sorted(po for po, n in collections.Counter((r["p"], r["o"]) for r in processed).items() if n > 1)
    generations = sorted({r["g"] for r in processed})
    assert len(generations) >= 3, f"expected a join and a leave, saw generations {generations}"
    assert not twice, f"{len(twice)} of {len(expected)} messages processed twice, e.g. {twice[:5]}"
