"""The ceiling: a bare nats-py aggregator computing the same three metrics as the agents.

What Python can do on this machine for the work the pipeline does, with every shortcut and none
of the framework, in one process:

- a hand-made batched pull per partition (``$JS.API.CONSUMER.MSG.NEXT`` with our own reply
  subject, two requests in flight, no acks), as :mod:`bridges.transport.reader` does;
- ``pydantic_core.from_json`` (installed with pydantic: no new dependency), about 3x faster than
  ``json.loads`` on these events, and ``datetime.fromisoformat`` for the event time;
- the progression, engagement and outcomes aggregates hand-written over lists, in tumbling
  windows;
- each final result written like the workers write it — a KV put and a publish on
  ``results.<metric>.<student_id>`` — pipelined, acknowledgements counted on one inbox.

Time, by the workers' rule, kept as cheap as the rest: an event's arrival is its message's
``Faust-Ts`` (else the time JetStream stored it), it is counted only if it arrived before its
window's end + grace, and a window closes when the partition's watermark passes its end + grace.
The watermark is the ceiling's own knowledge instead of readings of the streams: the latest
arrival read in the partition (the backlog it reads is stored in arrival order, so nothing
earlier is still to come), and once every stored message is read, the end of time (it reads a
fixed backlog and nothing else). The cost is one header lookup and a comparison per event; the
dataset's windows close as they did under the event-time watermark this stage had before.

What it leaves out, and the pipeline pays for: a state changelog and exactly-once recovery,
dead letters, consumer groups, commits, faust's streams. Its results are checked against the
oracle like every other stage's.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic_core import from_json, to_json

from benchmarks.dataset import Dataset
from bridges.jetstream import parse_ack_subject
from bridges.naming import Naming
from bridges.public.streams import PublicStreams
from bridges.transport.envelope import HDR_TS
from contract.names import EVENTS_TOPIC, METRICS_BUCKET

__all__ = ["run_ceiling"]

_BATCH = 1000
_MAX_IN_FLIGHT = 8192
_LEVELS = frozenset({"level_started", "level_completed", "level_failed"})


async def run_ceiling(client: Client, dataset: Dataset) -> float:
    """Seconds to read every stored event, aggregate it and get every final result acknowledged."""
    js = client.jetstream()
    streams = PublicStreams()
    await streams.ensure_results(js)
    await streams.ensure_metrics_bucket(js)
    naming = Naming()
    sink = _Sink(client)
    await sink.start()
    totals = [
        (await js.stream_info(naming.stream(EVENTS_TOPIC, p))).state.last_seq for p in range(dataset.partitions)
    ]
    windows = [_Windows(dataset.window, dataset.grace, sink) for _ in totals]
    started = time.perf_counter()
    await asyncio.gather(
        *(_pull(client, naming.stream(EVENTS_TOPIC, p), total, windows[p]) for p, total in enumerate(totals))
    )
    await sink.drain()
    elapsed = time.perf_counter() - started
    late = sum(w.late for w in windows)
    if late or sink.written != len(dataset.expected):
        raise AssertionError(
            f"the ceiling wrote {sink.written} results and found {late} events late, "
            f"the oracle expects {len(dataset.expected)} results and none late"
        )
    return elapsed


async def _pull(client: Client, stream: str, total: int, windows: _Windows) -> None:
    """Read ``total`` messages of ``stream`` from the start into ``windows``, then close them all."""
    js = client.jetstream()
    info = await js.add_consumer(
        stream,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, mem_storage=True, inactive_threshold=60
        ),
    )
    inbox = client.new_inbox()
    request = json.dumps({"batch": _BATCH, "expires": 30_000_000_000}).encode()
    subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{info.name}"
    done = asyncio.Event()
    state = {"received": 0, "requested": 0}

    async def ask() -> None:
        if state["requested"] < total:
            state["requested"] += _BATCH
            await client.publish(subject, request, reply=inbox)

    add = windows.add

    async def on_msg(msg: Msg) -> None:
        if not msg.reply:
            return  # a status message (request expired): the ones we need are still coming
        headers = msg.headers
        stamp = headers.get(HDR_TS) if headers else None
        await add(from_json(msg.data), float(stamp) if stamp is not None else _stored_at(msg.reply))
        received = state["received"] = state["received"] + 1
        if received % _BATCH == 0:
            await ask()
        if received >= total:
            done.set()

    sub = await client.subscribe(inbox, cb=on_msg, pending_msgs_limit=-1)
    try:
        if total:
            await ask()
            await ask()
            await done.wait()
    finally:
        await sub.unsubscribe()
        await js.delete_consumer(stream, info.name)
    await windows.close_all()  # every stored message is read: nothing else is still to come


def _stored_at(reply: str) -> float:
    """When JetStream stored the message, from its ack subject (epoch seconds)."""
    ack = parse_ack_subject(reply)
    if ack is None:
        raise AssertionError(f"not a JetStream delivery: {reply!r}")
    return ack.timestamp_ns / 1e9


class _Sink:
    """Pipelined KV puts and result publishes; acknowledgements counted on one inbox."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._inbox = client.new_inbox()
        self._in_flight = 0
        self._space = asyncio.Event()
        self._idle = asyncio.Event()
        self._errors: list[bytes] = []
        self.written = 0

    async def start(self) -> None:
        async def on_ack(msg: Msg) -> None:
            if msg.data.startswith(b'{"error"') or not msg.data:
                self._errors.append(msg.data or b"no responders")
            self._in_flight -= 1
            if self._in_flight < _MAX_IN_FLIGHT:
                self._space.set()
            if not self._in_flight:
                self._idle.set()

        await self._client.subscribe(self._inbox, cb=on_ack, pending_msgs_limit=-1)

    async def write(self, kv_key: str, subject: str, payload: bytes) -> None:
        while self._in_flight >= _MAX_IN_FLIGHT:
            self._space.clear()
            await self._space.wait()
        self._in_flight += 2
        self._idle.clear()
        self.written += 1
        await self._client.publish(f"$KV.{METRICS_BUCKET}.{kv_key}", payload, reply=self._inbox)
        await self._client.publish(subject, payload, reply=self._inbox)

    async def drain(self) -> None:
        await self._client.flush()
        if self._in_flight:
            await self._idle.wait()
        if self._errors:
            raise AssertionError(f"{len(self._errors)} writes failed, e.g. {self._errors[0][:200]!r}")


class _Windows:
    """The three metrics' open windows of one partition.

    States are lists, one slot per aggregate, with the event count first. The watermark is the
    latest arrival seen (see the module docstring); ``late`` counts events not counted.
    """

    def __init__(self, window: int, grace: int, sink: _Sink) -> None:
        self._window = window
        self._grace = grace
        self._sink = sink
        #: window start -> (metric, key...) -> state
        self._open: dict[int, dict[tuple[str, ...], list[Any]]] = {}
        self._watermark = 0.0
        self._next_close = float("inf")
        self._bounds: dict[int, dict[str, str]] = {}
        self.late = 0

    async def add(self, event: dict[str, Any], arrived_at: float) -> None:
        t = datetime.fromisoformat(event["occurred_at"]).timestamp()
        start = int(t) // self._window * self._window
        if start + self._window + self._grace <= max(self._watermark, arrived_at):
            self.late += 1  # arrived after its window's end + grace (or its window closed)
            return
        windows = self._open.get(start)
        if windows is None:
            windows = self._open[start] = {}
            self._next_close = min(self._next_close, start + self._window + self._grace)
        student = event["student_id"]
        kind, name, data = event["type"], event["name"], event.get("data", {})
        state = windows.get(("engagement", student))
        if state is None:
            state = windows[("engagement", student)] = [0, 0, 0, 0, 0, 0]
        state[0] += 1
        if kind == "interaction":
            state[1] += 1
            correct = data.get("correct")
            if type(correct) is bool:
                state[2] += 1
                state[3] += correct
        elif kind == "engagement":
            if name == "heartbeat":
                state[4] += data["seconds"]
            elif name == "session_started":
                state[5] += 1
        elif kind == "game":
            if name in _LEVELS:
                self._progression(windows, student, name, data)
            elif name == "game_finished":
                self._outcomes(windows, student, event["game_id"], data)
        if arrived_at > self._watermark:
            self._watermark = arrived_at
            if arrived_at >= self._next_close:
                await self._close()

    @staticmethod
    def _progression(windows: dict[tuple[str, ...], list[Any]], student: str, name: str, data: dict[str, Any]) -> None:
        state = windows.get(("progression", student))
        if state is None:
            state = windows[("progression", student)] = [0, 0, 0, 0, None, 0]
        state[0] += 1
        if name == "level_started":
            state[1] += 1
        elif name == "level_failed":
            state[3] += 1
        else:
            state[2] += 1
            level = data["level"]
            state[4] = level if state[4] is None or level > state[4] else state[4]
            state[5] += data["score"]

    @staticmethod
    def _outcomes(windows: dict[tuple[str, ...], list[Any]], student: str, game: str, data: dict[str, Any]) -> None:
        state = windows.get(("outcomes", student, game))
        if state is None:
            state = windows[("outcomes", student, game)] = [0, 0, 0, 0, 0, 0]
        state[0] += 1
        outcome = data["outcome"]
        state[1 if outcome == "win" else 2 if outcome == "loss" else 3] += 1
        state[4] += data["score"]
        state[5] += data["duration_ms"]

    async def close_all(self) -> None:
        """Nothing more will arrive: close every open window."""
        self._watermark = float("inf")
        await self._close()

    async def _close(self) -> None:
        limit = self._watermark - self._window - self._grace
        for start in sorted(s for s in self._open if s <= limit):
            bounds = self._window_bounds(start)
            for (metric, *key), state in self._open.pop(start).items():
                await self._write(metric, key, start, bounds, state)
        self._next_close = min(self._open, default=float("inf")) + self._window + self._grace

    def _window_bounds(self, start: int) -> dict[str, str]:
        bounds = self._bounds.get(start)
        if bounds is None:
            bounds = self._bounds[start] = {"start": _rfc3339(start), "end": _rfc3339(start + self._window)}
        return bounds

    async def _write(self, metric: str, key: list[str], start: int, bounds: dict[str, str], state: list[Any]) -> None:
        events = state[0]
        if metric == "engagement":
            _, interactions, answers, correct, seconds, sessions = state
            values = {
                "interactions": interactions, "answers": answers, "correct": correct,
                "active_seconds": seconds, "sessions": sessions,
                "accuracy": correct / answers if answers else None,
            }
            names = {"student_id": key[0]}
        elif metric == "progression":
            _, started, completed, failed, max_level, score = state
            finished = completed + failed
            values = {
                "levels_started": started, "levels_completed": completed, "levels_failed": failed,
                "max_level": max_level, "score": score,
                "completion_rate": completed / finished if finished else None,
            }
            names = {"student_id": key[0]}
        else:
            _, wins, losses, abandons, score, duration = state
            values = {
                "games": events, "wins": wins, "losses": losses, "abandons": abandons,
                "mean_score": score / events, "mean_duration_ms": duration / events, "win_rate": wins / events,
            }
            names = {"student_id": key[0], "game_id": key[1]}
        document = {"metric": metric, "key": names, "window": bounds, "final": True, "events": events, "values": values}
        await self._sink.write(".".join([metric, *key, str(start)]), f"results.{metric}.{key[0]}", to_json(document))


def _rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
