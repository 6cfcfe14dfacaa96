"""A faust app for the transport's integration tests, run with faust's own CLI.

It sums values per key in a table and appends every processed message to
``$SEEN_DIR/<worker>.jsonl`` (flushed per line), so a test can check delivery, order, ownership
per generation and the table's contents. A value of ``0`` is a probe: it adds nothing and makes
the agent record the key's current total.
"""

import json
import os
import time

import faust

app = faust.App(
    os.environ.get("APP_ID", "counter"),
    broker=os.environ["BROKER"],
    store="tracked-memory://",
    web_enabled=False,
    # faust's assignor tells members apart by this URL; make it unique per process.
    canonical_url=f"http://worker-{os.getpid()}.invalid:6066",
    topic_partitions=int(os.environ.get("PARTITIONS", "4")),
    table_standby_replicas=int(os.environ.get("STANDBYS", "0")),
    broker_commit_interval=float(os.environ.get("COMMIT_INTERVAL", "0.5")),
)


class Click(faust.Record, serializer="json"):
    user: str
    n: int


numbers = app.topic("numbers", value_type=int)
clicks = app.topic("clicks", value_type=Click)
totals = app.Table("totals", default=int)
clicks_per_user = app.Table("clicks-per-user", default=int)

_seen = open(  # noqa: SIM115 - lives as long as the worker
    os.path.join(os.environ["SEEN_DIR"], f"{os.environ.get('WORKER_NAME', os.getpid())}.jsonl"),
    "a",
    buffering=1,
)


def record(**fields: object) -> None:
    _seen.write(json.dumps({"w": os.environ.get("WORKER_NAME"), "at": time.time(), **fields}) + "\n")


@app.agent(numbers)
async def count(stream):
    async for event in stream.events():
        message = event.message
        key = message.key.decode() if message.key is not None else None
        if event.value == 0:
            record(probe=key, total=totals[key])
            continue
        totals[key] += event.value
        record(
            # the group's generation: faust's own stays the same through a cooperative rebalance
            g=app.consumer.group_generation,
            t=message.topic,
            p=message.partition,
            o=message.offset,
            k=key,
            v=event.value,
            ts=message.timestamp,
            h=[[name, value.decode()] for name, value in (message.headers or [])],
        )


@app.agent(clicks)
async def regroup(stream):
    async for click in stream.group_by(Click.user, name="by-user"):
        clicks_per_user[click.user] += click.n
        record(user=click.user, n=click.n, user_total=clicks_per_user[click.user])
