"""The throughput projection: cores, partitions and the nats-server's share, from measured costs."""

from __future__ import annotations

import math

import pytest

from benchmarks.projection import Costs, project, projection_rows

US = 1e-6
#: one process per agent: 20, 30 and 10 us per event, the server 10 us: 70 us in all
ONE = Costs({"a": 20 * US, "b": 30 * US, "c": 10 * US}, 10 * US)
#: split over more processes, each agent costs a quarter more
MORE = Costs({"a": 25 * US, "b": 37.5 * US, "c": 12.5 * US}, 10 * US)


@pytest.mark.parametrize(
    ("cores", "partitions", "rate", "capped_by", "processes"),
    [
        # 1 core: 1 / 70 us; every agent keeps up with one process
        (1, 4, 1 / (70 * US), "cores", {"a": 1, "b": 1, "c": 1}),
        # 2 cores: 2 / 70 us = 28.6k/s needs 0.86 of a core for b: still one process each
        (2, 4, 2 / (70 * US), "cores", {"a": 1, "b": 1, "c": 1}),
        # 4 cores: b needs more than a core, so every agent is costed as split: 4 / 85 us
        (4, 4, 4 / (85 * US), "cores", {"a": 2, "b": 2, "c": 1}),
        # 64 cores would allow 64 / 85 us = 753k/s; 2 partitions let b run at 2 / 37.5 us
        (64, 2, 2 / (37.5 * US), "partitions", {"a": 2, "b": 2, "c": 2}),
    ],
)
def test_the_rate_is_the_lower_of_the_cores_and_the_partitions_bound(
    cores: int, partitions: int, rate: float, capped_by: str, processes: dict[str, int]
) -> None:
    projection = project(ONE, MORE, cores, partitions)
    assert math.isclose(projection.rate, rate)
    assert projection.capped_by == capped_by
    assert dict(projection.processes) == processes
    assert math.isclose(projection.server_bound, cores / (10 * US))


def test_costs_are_cpu_seconds_per_event() -> None:
    costs = Costs.measured({"a": 3.0, "b": 1.5}, 0.75, 150_000)
    assert costs.agents == pytest.approx({"a": 20 * US, "b": 10 * US})
    assert costs.server == pytest.approx(5 * US)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        project(ONE, MORE, 0, 4)


def test_rows_compare_each_shape_with_the_measured_pipeline() -> None:
    (row,) = projection_rows(ONE, MORE, measured_rate=10_000, shapes=[(64, 2)])
    assert row.key == "projection-64c-2p"
    assert math.isclose(row.ratio or 0, 2 / (37.5 * US) / 10_000)
    assert "capped by the 2 partitions" in row.detail
    assert "nats-server 12% of the CPU" in row.detail


def test_an_agent_measured_below_the_clock_tick_still_costs_something() -> None:
    # A quick run can use less CPU than /proc's resolution: a zero cost would divide by zero.
    costs = Costs.measured({"engagement": 0.0, "outcomes": 0.02}, 0.0, 1_000)
    assert costs.agents["engagement"] > 0
    assert project(costs, costs, 2, 4).rate > 0
