"""Query cost against history: ``GET /v1/metrics/...`` p99 for a student with a short and one with
a year-long history.

Two students' engagement windows of 60 s, the newest ending at the current minute, are written
straight into the ``metrics`` bucket as the workers write finals (pipelined puts, a ~370-byte
document each): ``small`` windows for one, ``large`` for the other (a year of 1-minute windows:
525,600), its older windows written after its newest ones, so that no query can rely on write
order. A web process (``python -m app web``, as in production) answers, one request at a time
from this process, for each student:

- a **1-hour range**, the hour that ends with the newest window (60 windows);
- **/latest** (the newest window).

The requests go round the four questions in turn, so the noise of a shared machine falls on
both students alike; the figure is each question's p99 request time, and the goal is a ratio of
about 1 between the two students: a query reads the windows it answers, not the history. The
short history's questions are also asked before the long one is written (the bucket holding
only them), to show the bucket's size costs nothing either. Every answer is checked (60 windows,
the newest one), so a fast wrong answer fails the run. The web process's dashboard follows every
write of the bucket; questions are asked once it caught up.

    python -m benchmarks.query --large 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nats
from nats.aio.client import Client

from benchmarks.ingest import percentile, web_process
from bridges.server import NatsServer
from testkit.metrics import put_many
from testkit.oracle import format_window_time

__all__ = ["QueryFigures", "run_query"]

WINDOW = 60
SHORT, LONG = "s-short", "s-long"
_WARM_UP = 20

#: (p50, p99) request times, seconds
Times = tuple[float, float]


@dataclass(frozen=True)
class QueryFigures:
    small: int
    large: int
    requests: int
    #: each question for the short and the long history, asked in turn
    range_small: Times
    range_large: Times
    latest_small: Times
    latest_large: Times
    #: the short history's questions before the long history was written
    range_alone: Times
    latest_alone: Times
    #: seconds to write the long history
    write_seconds: float


@dataclass(frozen=True)
class _Question:
    path: str
    params: dict[str, str]
    check: Callable[[Any], bool]


def _document(student: str, start: int) -> bytes:
    return json.dumps({
        "metric": "engagement", "key": {"student_id": student},
        "window": {"start": format_window_time(start), "end": format_window_time(start + WINDOW)},
        "final": True, "events": 4,
        "values": {"interactions": 1, "answers": 1, "correct": 1, "accuracy": 1.0, "active_seconds": 30, "sessions": 0},
    }).encode()


def _history(student: str, newest: int, count: int) -> Iterator[tuple[str, bytes]]:
    """``count`` windows back in time from ``newest``: its newest 1,000 first, then the older ones."""
    order = [*range(min(count, 1000)), *range(1000, count)]
    for n in order:
        start = newest - WINDOW * n
        yield f"engagement.{student}.{start}", _document(student, start)


def _questions(student: str, newest: int) -> tuple[_Question, _Question]:
    path = f"/v1/metrics/engagement/{student}"
    hour = {"from": format_window_time(newest - 3600 + WINDOW), "to": format_window_time(newest + WINDOW)}
    return (
        _Question(path, hour, lambda body: len(body["windows"]) == 60),
        _Question(f"{path}/latest", {}, lambda body: body["window"]["start"] == format_window_time(newest)),
    )


async def _ask(http: aiohttp.ClientSession, questions: list[_Question], requests: int) -> list[Times]:
    """Each question ``requests`` times, in turn, after a warm-up; (p50, p99) of each."""
    times: list[list[float]] = [[] for _ in questions]
    for n in range(requests + _WARM_UP):
        for question, spent in zip(questions, times, strict=True):
            started = time.perf_counter()
            async with http.get(question.path, params=question.params) as response:
                body = await response.json()
            elapsed = time.perf_counter() - started
            if response.status != 200 or not question.check(body):
                raise AssertionError(f"GET {question.path} {question.params}: {response.status} {str(body)[:300]}")
            if n >= _WARM_UP:  # the first ones pay for connections and first calls
                spent.append(elapsed)
    return [(percentile(spent, 0.5), percentile(spent, 0.99)) for spent in times]


async def _watches_caught_up(client: Client, timeout: float = 120.0) -> None:
    """Wait until every consumer of the bucket (the web process's dashboard watch, which follows
    every write) has been sent everything: its catching up is not what is measured."""
    js = client.jetstream()
    deadline = time.monotonic() + timeout
    while any(info.num_pending for info in await js.consumers_info("KV_metrics")):
        if time.monotonic() > deadline:
            raise AssertionError(f"the bucket's consumers did not catch up within {timeout:.0f} s")
        await asyncio.sleep(0.2)


async def run_query(client: Client, nats_url: str, *, base_dir: Path, small: int, large: int, requests: int) -> QueryFigures:
    newest = int(time.time()) // WINDOW * WINDOW - WINDOW
    short, long = _questions(SHORT, newest), _questions(LONG, newest)
    await put_many(client, _history(SHORT, newest, small))
    with web_process(nats_url, base_dir / "data") as url:
        async with aiohttp.ClientSession(url) as http:
            await _watches_caught_up(client)
            range_alone, latest_alone = await _ask(http, list(short), requests)
            started = time.perf_counter()
            await put_many(client, _history(LONG, newest, large))
            write_seconds = time.perf_counter() - started
            await _watches_caught_up(client)
            range_small, range_large, latest_small, latest_large = await _ask(
                http, [short[0], long[0], short[1], long[1]], requests
            )
    return QueryFigures(
        small, large, requests, range_small, range_large, latest_small, latest_large, range_alone, latest_alone,
        write_seconds,
    )


async def main(small: int, large: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with NatsServer(Path(tmp) / "nats") as server:
            client = await nats.connect(server.url)
            try:
                q = await run_query(client, server.url, base_dir=Path(tmp), small=small, large=large, requests=requests)
            finally:
                await client.close()

    def ms(times: Times) -> str:
        return f"{times[0] * 1000:.2f}/{times[1] * 1000:.2f} ms"

    print(f"{requests} requests per question; {large:,} windows written in {q.write_seconds:.1f} s; p50/p99:")
    for what, alone, short, long in (("1-hour range", q.range_alone, q.range_small, q.range_large),
                                     ("latest", q.latest_alone, q.latest_small, q.latest_large)):
        print(f"{what:<13} {small:,} windows {ms(short)} (alone in the bucket {ms(alone)}), "
              f"{large:,} windows {ms(long)}: p99 ratio {long[1] / short[1]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1_000, help="windows of the short history")
    parser.add_argument("--large", type=int, default=525_600, help="windows of the long history (a year: 525,600)")
    parser.add_argument("--requests", type=int, default=500, help="requests per question")
    args = parser.parse_args()
    asyncio.run(main(args.small, args.large, args.requests))
