"""The simulator's options and its reports (the run itself is exercised against a real web
process in tests/integration/test_simulator.py)."""

from __future__ import annotations

import json

import pytest

from app.demo.status import parse_report
from app.simulator.run import SimulatorOptions, Totals
from app.simulator.senders import Delivery
from bridges.connection import ConnectionSettings

NATS = ConnectionSettings.from_urls("nats://127.0.0.1:4222")


def test_totals_count_what_ingest_answered_and_the_rate_of_each_interval() -> None:
    totals = Totals(sent=100, repeats=5, invalid=3, late=2)
    totals.take(Delivery(accepted=95, duplicates=5))
    totals.take(Delivery(refused=3))
    totals.mark(10.0)
    assert (totals.accepted, totals.duplicates, totals.refused) == (95, 5, 3)
    assert totals.rate == pytest.approx(10.8)  # 108 messages in 10 s
    totals.sent += 20
    totals.mark(12.0)
    assert totals.rate == pytest.approx(10.0)  # 20 more in 2 s


def test_the_json_report_is_what_the_demo_reads() -> None:
    totals = Totals(sent=7, late=1, repeats=2, invalid=1, accepted=7, duplicates=2, refused=1, retries=3)
    totals.mark(2.0)
    line = totals.as_json()
    assert "\n" not in line
    report = parse_report(line)
    assert report == {
        "sent": 7, "late": 1, "repeats": 2, "invalid": 1, "accepted": 7, "duplicates": 2,
        "refused": 1, "retries": 3, "rate": 5.0, "elapsed": 2.0,
    }  # fmt: skip
    assert json.loads(line)["simulator"] == report


def test_the_text_report_says_what_was_sent_and_answered() -> None:
    totals = Totals(sent=10, repeats=1, late=2, invalid=3, accepted=9, duplicates=1, refused=3)
    totals.mark(1.0)
    assert totals.as_text() == (
        "simulate: 14 events sent (14.0/s): 1 repeated, 2 late, 3 invalid; "
        "ingest stored 9, 1 duplicates, 3 refused; 0 retries"
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(ingest="kafka"), "ingest must be one of http, nats, both"),
        (dict(students=0), "students must be >= 1"),
        (dict(rate=0), "rate must be > 0"),
        (dict(report_every=0), "report_every must be > 0"),
    ],
)
def test_options_refuse_what_cannot_run(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulatorOptions(url="http://127.0.0.1:8080", nats=NATS, **changes)
