"""What the system stores, per event and per window, and what a year at 1,000 events/s needs.

One full pipeline run (1 worker per agent, :func:`benchmarks.pipeline.run_pipeline`) on a fresh
nats-server; afterwards every stream's stored bytes are read from the server and divided by what
they hold:

- the **events topic** (its partitions' streams): bytes per event, as ingest writes them (batch
  records, :mod:`tables.batch`);
- the **metrics bucket** (``KV_metrics``): bytes per window (one final per window and metric);
- the **RESULTS stream**: bytes per published final;
- the **changelogs**: what is left once every window has closed and the workers have stopped
  (SIGTERM: their last flush stored and purged; :mod:`tables.compaction` keeps a changelog to
  the open state, so this is not per window);
- the rest (offsets, group leases, topic registrations): bookkeeping, a few KiB.

The year is a projection, not a measurement: each stream keeps what its default retention
(``EVENTS_RETENTION``, ``METRICS_TTL``, ``RESULTS_RETENTION``; :mod:`app.settings`) lets it
keep, at 1,000 events/s and with this dataset's windows per event (its students send about 4.5
events a minute, so each 1-minute window of each metric holds a few events). After the longest
retention (``METRICS_TTL``, 90 days) the store stops growing: the figure is that steady state,
per replica, and is compared with keeping everything for the year. The INGEST work queue and the
dead letters are left out: the first holds only what the web processes have not pulled yet, the
second only what producers got wrong.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from app.settings import Settings
from benchmarks.dataset import Dataset
from benchmarks.pipeline import run_pipeline
from benchmarks.report import Row

__all__ = ["StoredBytes", "run_storage", "storage_rows", "stored_messages"]

#: the projection's event rate (the issue's figure for a busy platform)
RATE = 1_000.0
_YEAR = 365 * 86_400.0


@dataclass(frozen=True)
class StoredBytes:
    """Bytes and messages the server holds per kind of stream after one pipeline run."""

    events: int
    events_messages: int
    metrics: int
    metrics_keys: int
    results: int
    results_messages: int
    #: payload bytes of the results (the documents alone, without subjects and headers)
    results_payload: int
    changelogs: int
    changelog_messages: int
    bookkeeping: int


async def run_storage(url: str, client: Client, dataset: Dataset, *, base_dir: Path, session_timeout: float) -> StoredBytes:
    """Run the pipeline over ``dataset``, then read every stream's size (see the module docstring)."""
    await run_pipeline(
        url, client, dataset, processes=1, base_dir=base_dir, session_timeout=session_timeout, graceful=True
    )
    js = client.jetstream()
    sizes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    results_stream = ""
    for info in await js.streams_info():
        name, state = info.config.name or "", info.state
        kind = _kind(name)
        if kind == "results":
            results_stream = name
        sizes[kind][0] += int(state.bytes)
        sizes[kind][1] += int(state.messages)
    return StoredBytes(
        events=sizes["events"][0], events_messages=sizes["events"][1],
        metrics=sizes["metrics"][0], metrics_keys=sizes["metrics"][1],
        results=sizes["results"][0], results_messages=sizes["results"][1],
        results_payload=await _payload_bytes(js, results_stream),
        changelogs=sizes["changelogs"][0], changelog_messages=sizes["changelogs"][1],
        bookkeeping=sizes["bookkeeping"][0],
    )


async def _payload_bytes(js: JetStreamContext, stream: str) -> int:
    """The payload bytes of every message ``stream`` holds."""
    return sum(len(msg.data) for msg in await stored_messages(js, stream))


async def stored_messages(js: JetStreamContext, stream: str, subject: str = ">") -> list[Msg]:
    """Every message ``stream`` holds on ``subject``, oldest first (an ephemeral consumer, no acks)."""
    sub = await js.pull_subscribe(
        subject, stream=stream, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE)
    )
    messages: list[Msg] = []
    try:
        while True:
            batch = await sub.fetch(1000, timeout=5)
            messages += batch
            if batch[-1].metadata.num_pending == 0:
                return messages
    except TimeoutError:
        return messages  # nothing (more) to read
    finally:
        await sub.unsubscribe()


def _kind(stream: str) -> str:
    if stream == "KV_metrics":
        return "metrics"
    if stream.endswith("_RESULTS"):
        return "results"
    if "-changelog_" in stream:
        return "changelogs"
    if stream.startswith("FAUST_events_"):
        return "events"
    return "bookkeeping"


def storage_rows(stored: StoredBytes, dataset: Dataset, stage: str) -> list[Row]:
    """The rows of the storage stage: bytes per event and per window, and the year's projection."""
    if stored.metrics_keys != len(dataset.expected) or stored.results_messages != len(dataset.expected):
        raise AssertionError(
            f"expected {len(dataset.expected):,} windows, found {stored.metrics_keys:,} keys and "
            f"{stored.results_messages:,} results"
        )
    per_event = stored.events / dataset.size
    per_window = stored.metrics / stored.metrics_keys
    per_result = stored.results / stored.results_messages
    windows_per_event = len(dataset.expected) / dataset.size
    defaults = Settings.from_env({})
    retention = defaults.events_limits.max_age
    streams = defaults.public_limits
    kept = {
        "events topic": per_event * RATE * min(retention, _YEAR),
        "metrics bucket": per_window * windows_per_event * RATE * min(streams.metrics.max_age, _YEAR),
        "RESULTS stream": per_result * windows_per_event * RATE * min(streams.results.max_age, _YEAR),
    }
    everything = RATE * _YEAR * (per_event + windows_per_event * (per_window + per_result))
    total = sum(kept.values())
    # What the bytes carry: each event's JSON, and each final's document as published.
    event_json = sum(len(json.dumps(event, separators=(",", ":"))) for event in dataset.events) / dataset.size
    document = stored.results_payload / stored.results_messages
    shape = f"{dataset.size:,} events, {len(dataset.expected):,} windows ({windows_per_event:.2f} per event)"
    return [
        Row("storage-event", stage, "events topic, per event", per_event, "B", per_event / event_json,
            f"the event's JSON ({event_json:.0f} B)",
            f"{stored.events:,} B in {stored.events_messages:,} batch records; {shape}"),
        Row("storage-window", stage, "metrics bucket, per window", per_window, "B", per_window / document,
            f"the final's document ({document:.0f} B)",
            f"{stored.metrics:,} B for {stored.metrics_keys:,} finals"),
        Row("storage-result", stage, "RESULTS stream, per final", per_result, "B", per_result / document,
            f"the final's document ({document:.0f} B)",
            f"{stored.results:,} B for {stored.results_messages:,} results"),
        Row("storage-changelogs", stage, "changelogs once every window closed, workers stopped", stored.changelogs,
            "B", stored.changelogs / (per_window * stored.metrics_keys), "a record per closed window",
            f"{stored.changelog_messages} messages in all partitions of the 3 agents (markers, watermarks, fences); "
            f"bookkeeping streams {stored.bookkeeping:,} B"),
        Row("storage-year", stage, f"a year at {RATE:,.0f} events/s, default retention, per replica",
            total / 1e9, "GB", total / everything, "keeping everything a year",
            "; ".join(f"{name} {size / 1e9:,.1f} GB" for name, size in kept.items())
            + f"; steady after {max(retention, streams.metrics.max_age) / 86_400:.0f} days; "
            f"everything for a year would be {everything / 1e12:,.1f} TB"),
    ]
