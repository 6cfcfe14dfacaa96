"""A one-table faust app for the scaling, failover and recovery stage; run by faust's own CLI.

    faust -A benchmarks.table_app worker --without-web

It counts messages per key in a faust ``Table`` (``tracked-memory://``, so a standby resumes
from what it holds). Settings from the environment: ``BROKER`` (the nats:// URL),
``APP_ID`` (the group), ``PARTITIONS``, ``STANDBYS`` (``table_standby_replicas``).
No windows, so no event time: a message counts whenever it arrives.
"""

import os

import faust

app = faust.App(
    os.environ.get("APP_ID", "bench-table"),
    broker=os.environ["BROKER"],
    store="tracked-memory://",
    web_enabled=False,
    # faust's assignor tells members apart by this URL; make it unique per process.
    canonical_url=f"http://bench-{os.getpid()}.invalid:6066",
    topic_partitions=int(os.environ.get("PARTITIONS", "4")),
    table_standby_replicas=int(os.environ.get("STANDBYS", "1")),
    broker_commit_interval=0.5,
    # The agent's queue, shared by every partition, in messages (faust's default is 4,096): a
    # partition gained in a rebalance brings its backlog at once, and the partitions this worker
    # kept wait behind all of it that fits here (docs/transport.md, consumer groups).
    stream_buffer_maxsize=100,
)

keys = app.topic("bench-keys", value_type=int)  # type: ignore[arg-type]  # faust's stubs omit int; json values work
totals = app.Table("totals", default=int)


@app.agent(keys)
async def count(stream):
    async for event in stream.events():
        totals[event.message.key.decode()] += event.value
