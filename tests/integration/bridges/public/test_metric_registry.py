"""A reader's registry follows what the workers publish, for metrics it already knows too.

Against a real nats-server, with the registry's clock in the test's hands: a reader that has
answered for a metric is asked again after a worker redeployed it (a described value added), and
after the metric's version 2 completed its backfill; within ``max_age`` it answers from its copy
(no request), and past it with what the bucket holds now, whichever method is asked, while a
metric it has never seen is found on the first request.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridges.public.metric_registry import MetricRegistry, ensure_registry_bucket, publish_description
from bridges.public.streams import PublicStreams
from bridges.server import NatsServer
from contract.registry import Backfill, MetricDescription, WindowDescription
from testkit.streams import nats_client

pytestmark = pytest.mark.integration

MAX_AGE = 2.0


def _described(version: int = 1, **values: str) -> MetricDescription:
    return MetricDescription(
        name="hints", version=version, key_fields=("student_id",),
        window=WindowDescription(kind="tumbling", size_seconds=60, step_seconds=60), grace_seconds=5, values=values,
    )


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_known_metric_is_read_again_once_the_copy_is_older_than_max_age(nats_server: NatsServer) -> None:
    streams = PublicStreams()
    clock = _Clock()
    async with nats_client(nats_server.url) as client:
        js = client.jetstream()
        await publish_description(js, streams, _described(hints="integer"))
        async with MetricRegistry(client, streams=streams, max_age=MAX_AGE, clock=clock) as registry:
            first = await registry.get("hints")
            assert first is not None and dict(first.values) == {"hints": "integer"}

            # The worker is redeployed with one more value (a compatible change, same version).
            await publish_description(js, streams, _described(hints="integer", streak="integer?"))
            clock.now += MAX_AGE / 2
            stale = await registry.get("hints")
            assert stale is not None and dict(stale.values) == {"hints": "integer"}, "read before max_age"
            clock.now += MAX_AGE / 2
            fresh = await registry.get("hints")
            assert fresh is not None and dict(fresh.values) == {"hints": "integer", "streak": "integer?"}

            # Version 2 starts: asked by version, it is found at once; the default stays version 1
            # while version 2's backfill is incomplete, and moves to it once complete.
            await publish_description(js, streams, _described(2, hints="integer", streak="integer?"))
            kv = await ensure_registry_bucket(js, streams, update_limits=False)
            started = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
            backfill = Backfill(series="hints_v2", started_at=started, targets={0: 10}, remaining=10, complete=False)
            await kv.put(backfill.key, backfill.to_json_bytes())
            v2 = await registry.get("hints", 2)
            assert v2 is not None and v2.version == 2, "a version not known yet is read at once"
            default = await registry.get("hints")
            assert default is not None and default.version == 1

            done = backfill.counted(0, started)
            await kv.put(done.key, done.to_json_bytes())
            default = await registry.get("hints")
            assert default is not None and default.version == 1, "read before max_age"
            clock.now += MAX_AGE
            default = await registry.get("hints")
            assert default is not None and default.version == 2, "the newest complete version, once read again"
            assert registry.known()["hints"].version == 2

            # A metric never seen is found on its first request, whatever the copy's age.
            await publish_description(js, streams, _described().model_copy(update={"name": "streaks"}))
            assert await registry.get("streaks") is not None
            assert await registry.get("no_such_metric") is None
