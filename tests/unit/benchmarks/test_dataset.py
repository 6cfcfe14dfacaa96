"""The suite's dataset is a backlog with its arrivals, in an order a reader may rely on."""

from __future__ import annotations

import json

from benchmarks.dataset import ARRIVAL_DELAY, make_dataset
from testkit.oracle import event_epoch


def test_each_event_arrived_a_little_after_it_occurred_and_arrivals_never_go_back_in_a_partition() -> None:
    dataset = make_dataset(400, partitions=4, window=60, grace=10)
    messages = dataset.messages()
    assert len(messages) == dataset.size == 400
    last: dict[int, float] = {}
    for message in messages:
        event = json.loads(message.payload)
        assert message.arrived_at == event_epoch(event) + ARRIVAL_DELAY
        assert message.arrived_at >= last.get(message.partition, 0.0)
        last[message.partition] = message.arrived_at
    assert dataset.last_arrival() == max(last.values())
    # Arrived long before every window's end + grace: nothing in the backlog is late.
    assert ARRIVAL_DELAY < dataset.grace
