"""Late events during a burst: live traffic at several times what the workers process (issue 12).

The three metric workers run, settled, with short windows and grace. Live events are then
published into the events topic at a fixed rate — about three times the pipeline's measured
throughput — for long enough that the workers fall several graces behind: at least the given
time, and on until a final has come :data:`BEHIND` graces after its window's end + grace (the
workers are at least that far behind then; how fast they fall behind depends on the machine and
on how many results the events make), at most four times the given time. Each event is stamped
``occurred_at`` = now just before it is published, and carries no ``Faust-Ts``, exactly as HTTP
ingest stores events: its arrival is when JetStream stores it, milliseconds later (see
``_publish_live`` for how this process keeps up that pace on a shared machine).

Time. Every event therefore arrives long before its window's end + grace, however far behind
the workers are: by the rule (late only if it *arrived* after end + grace), none may be
dead-lettered late. While the workers are behind, their windows close late too (the streams'
promises count only once a worker has processed past them), and how late the slowest final came
after its window's end + grace is the **lag** the burst reached: the workers were about that
many seconds behind.

Once every worker has caught up (committed the whole burst; dead letters are stored before
offsets are committed), the ``deadletter.late.*`` messages are read. Each says why it is late:
an event that really arrived after its window's end + grace (this machine held it up before
JetStream stored it: the bench's fault, reported apart) or an on-time event the watermark had
already passed (the pipeline's fault: what the figure counts, target 0). Every final in KV is
then compared with the oracle (:func:`testkit.oracle.expected_results`) of the published events
less those that really arrived late; a final that differs while no on-time event was judged
late fails the run, as a wrong result does in every stage.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from benchmarks.dataset import EVENTS_TOPIC, ResultWatch, dead_letter_counts, declare_topic
from benchmarks.workers import caught_up, metric_env, spawn_metric_workers, wait_owned, wait_ready
from bridges.naming import Naming
from bridges.public.streams import PublicStreams
from bridges.transport.envelope import HDR_MSG_ID, encode_headers
from bridges.transport.session import partition_for_key
from testkit.live import LiveEvents, rfc3339
from testkit.oracle import expected_results
from testkit.pipeline import METRIC_AGENTS, values_match
from testkit.workers import Workers, poll_until

__all__ = ["BEHIND", "BurstResult", "LateLetter", "final_delays", "judged_late_on_time", "late_letters", "run_burst"]

#: graces behind the workers must be seen to be before the burst may stop
BEHIND = 3
#: seconds between rounds of publishing: each round catches up with the rate
_TICK = 0.02
#: rounds between looks at how far behind the workers are
_LOOK_EVERY = 10
#: live events made ahead of the burst (each is sent again and again, with a new id and time)
_TEMPLATES = 16_384
#: what a late event's reason says when its arrival was before its window closed (tables/windowed.py)
_WATERMARK_PASSED = "but the watermark had already passed"


@dataclass(frozen=True)
class LateLetter:
    """A ``deadletter.late.<metric>`` message: the event's id and the reason given."""

    metric: str
    event_id: str
    reason: str


@dataclass(frozen=True)
class BurstResult:
    events: int
    #: events per second actually published, first publish -> last publish
    rate: float
    #: seconds from the first publish to the last
    seconds: float
    #: on-time events dead-lettered late (their arrival was before their window closed)
    misjudged: int
    #: events that really arrived after their window's end + grace (held up before being stored)
    arrived_late: int
    #: how long after its end + grace the slowest window's final was written
    lag: float
    #: finals expected, and those missing or not equal to the oracle's (or not expected at all)
    finals: int
    wrong: int
    grace: int


def final_delays(seen: dict[str, float], *, window: int, grace: int) -> dict[str, float]:
    """KV key -> seconds its final was written after its window's end + grace.

    Keys end with the window start in epoch seconds (``engagement.s1.1714557600``).
    """
    return {key: at - (int(key.rsplit(".", 1)[1]) + window + grace) for key, at in seen.items()}


def judged_late_on_time(reason: str) -> bool:
    """Whether a late event's reason says it arrived before its window closed (the watermark had
    passed its arrival), rather than after its end + grace."""
    return _WATERMARK_PASSED in reason


async def run_burst(
    url: str, client: Client, *, base_dir: Path, partitions: int, window: int, grace: int, rate: float,
    seconds: float, students: int, session_timeout: float,
) -> BurstResult:
    """Publish live events at ``rate`` to settled workers for ``seconds`` and on until they are far
    enough behind (see the module docstring)."""
    await declare_topic(client, partitions)
    env = metric_env(url, base_dir / "data", partitions=partitions, window=window, grace=grace,
                     session_timeout=session_timeout)
    with Workers(base_dir / "logs", env) as pool:
        await wait_ready(spawn_metric_workers(pool, METRIC_AGENTS, 1))
        for agent in METRIC_AGENTS:
            await wait_owned(url, agent, EVENTS_TOPIC, partitions, 1)
        async with ResultWatch(client, keep_values=True) as watch:

            def far_enough() -> bool:
                delays = final_delays(watch.seen, window=window, grace=grace)
                return max(delays.values(), default=0.0) >= BEHIND * grace

            events, published_in = await _publish_live(
                client, partitions, rate, students, at_least=seconds, at_most=4 * seconds, done=far_enough
            )
            drain = 60 + 10 * published_in  # the backlog drains at the workers' pace

            async def all_caught_up() -> bool:
                return all([await caught_up(client, agent, EVENTS_TOPIC, partitions) for agent in METRIC_AGENTS])

            await poll_until(all_caught_up, timeout=drain, interval=0.2, what="every worker to commit the burst")
            letters = await late_letters(client)
            misjudged = {letter.event_id for letter in letters if judged_late_on_time(letter.reason)}
            arrived_late = {letter.event_id for letter in letters} - misjudged
            expected = expected_results([e for e in events if e["event_id"] not in arrived_late], window_seconds=window)
            try:
                # The last windows are due end + grace after the burst, whatever the workers' pace.
                await watch.wait_for(expected.keys(), timeout=60 + window + grace)
            except TimeoutError:
                if not misjudged:
                    raise
                # Windows whose every event was misjudged late never close: counted as wrong below.
            delays = final_delays({key: at for key, at in watch.seen.items() if key in expected}, window=window, grace=grace)
            wrong = sum(
                1 for key, want in expected.items()
                if key not in watch.values or not values_match(json.loads(watch.values[key]), want)
            ) + len(watch.seen.keys() - expected.keys())
    if wrong and not misjudged:
        raise AssertionError(f"{wrong} of {len(expected)} finals of the burst differ from the oracle, none misjudged late")
    return BurstResult(
        events=len(events), rate=len(events) / published_in, seconds=published_in, misjudged=len(misjudged),
        arrived_late=len(arrived_late), lag=max(delays.values()), finals=len(expected), wrong=wrong, grace=grace,
    )


async def late_letters(client: Client) -> list[LateLetter]:
    """Every ``deadletter.late.*`` message stored so far."""
    count = sum((await dead_letter_counts(client, "deadletter.late.>")).values())
    if not count:
        return []
    js = client.jetstream()
    subscription = await js.pull_subscribe(
        "deadletter.late.>", stream=PublicStreams().deadletter,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30),
    )
    letters: list[LateLetter] = []
    try:
        while len(letters) < count:
            for msg in await subscription.fetch(min(500, count - len(letters)), timeout=10):
                letters.append(LateLetter(
                    msg.subject.rsplit(".", 1)[1], json.loads(msg.data)["event_id"], (msg.headers or {}).get("Reason", ""),
                ))
    finally:
        await subscription.unsubscribe()
    return letters


@dataclass(frozen=True)
class _Template:
    """A live event made ahead of the burst, but for its id and time: the rest of its JSON, its
    headers but the id, and its partition."""

    event: dict[str, Any]
    tail: bytes
    headers: dict[str, str]
    partition: int


def _templates(students: int, partitions: int, count: int) -> list[_Template]:
    out = []
    for event in LiveEvents(seed=12, students=students, run="burst").batch(count, 0.0):
        rest = {k: v for k, v in event.items() if k not in ("event_id", "occurred_at")}
        key = rest["student_id"].encode()
        headers = encode_headers(msg_id="", key=key, value_is_null=False, timestamp=None, headers=None)
        del headers[HDR_MSG_ID]
        tail = json.dumps(rest, separators=(",", ":")).encode()[1:]
        out.append(_Template(rest, tail, headers, partition_for_key(key, partitions)))
    return out


async def _publish_live(
    client: Client, partitions: int, rate: float, students: int, *, at_least: float, at_most: float,
    done: Callable[[], bool],
) -> tuple[list[dict[str, Any]], float]:
    """Publish live events at ``rate`` for ``at_least`` seconds, then on until ``done()`` or
    ``at_most`` seconds; returns them and the seconds it took.

    Each event is made as it is sent: a template made beforehand (a student's answer, heartbeat,
    level or game, with its key header and partition) with a new id and ``occurred_at`` = now.
    Messages go out as plain NATS publishes on the partitions' subjects — JetStream stores them
    all the same, with the same headers as HTTP ingest's — without waiting for each
    acknowledgement, which would cost this process more than the workers it must outrun on a
    shared machine: every round ends with a flush (the server has read all of it), so nothing
    waits long to be stored, and afterwards the partitions must hold every one.
    """
    naming = Naming()
    subjects = [naming.subject(EVENTS_TOPIC, p) for p in range(partitions)]
    templates = _templates(students, partitions, _TEMPLATES)
    sent: list[tuple[_Template, str, str]] = []
    js = client.jetstream()
    before = sum([(await js.stream_info(naming.stream(EVENTS_TOPIC, p))).state.messages for p in range(partitions)])
    begin = time.monotonic()
    rounds = 0
    stamp_ms, stamp = -1, ""
    while (elapsed := time.monotonic() - begin) < at_most:
        rounds += 1
        if elapsed >= at_least and rounds % _LOOK_EVERY == 0 and done():
            break
        # Paced by the clock, so the rate holds whatever one round of publishing costs; a round
        # sends at most 0.1 s worth, so a rate beyond reach still ends on time.
        target = min(int(rate * elapsed), len(sent) + max(1, int(rate * 0.1)))
        while len(sent) < target:
            now = time.time()
            if int(now * 1000) != stamp_ms:
                stamp_ms, stamp = int(now * 1000), rfc3339(now)  # occurred_at = now, to the millisecond
            template = templates[len(sent) % len(templates)]
            event_id = f"burst-{len(sent):07d}"
            payload = b'{"event_id":"%s","occurred_at":"%s",%s' % (event_id.encode(), stamp.encode(), template.tail)
            await client.publish(subjects[template.partition], payload, headers={HDR_MSG_ID: event_id, **template.headers})
            sent.append((template, event_id, stamp))
        await client.flush()
        await asyncio.sleep(_TICK)
    published_in = time.monotonic() - begin

    async def all_stored() -> bool:
        infos = [await js.stream_info(naming.stream(EVENTS_TOPIC, p)) for p in range(partitions)]
        return sum(info.state.messages for info in infos) - before >= len(sent)

    await poll_until(all_stored, timeout=30, interval=0.1, what=f"JetStream to store the {len(sent)} events of the burst")
    events = [{**template.event, "event_id": event_id, "occurred_at": at} for template, event_id, at in sent]
    return events, published_in
