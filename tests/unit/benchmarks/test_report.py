"""The benchmark report: a ratio on every row, and hand-written text kept across runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import BEGIN, END, Machine, Row, Target, format_table, render, write_report

ROWS = [
    Row("ceiling", "ceiling", "bare aggregator", 40_000, "events/s", None, "ceiling", "reference row"),
    Row("pipeline-1", "full pipeline", "1 process per agent", 4_000, "events/s", 0.1, "ceiling", "per worker"),
    Row("latency-p99", "latency", "close latency p99", 0.04, "s", 0.04, "1 s target", "846 windows"),
]
TARGETS = [Target("close latency p99", 0.04, "< 1 s", True), Target("ingest / raw", 0.2, ">= 0.3", False)]
HOST = Machine("a CPU", 2, 3.9, "Linux 6", "3.11.7", {"nats-py": "2.16.0"})


def block() -> str:
    return render(
        ROWS, TARGETS, command="python -m benchmarks", code="commit abc1234", started=datetime(2024, 5, 1, 10, tzinfo=UTC),
        seconds=280, host=HOST,
    )


def test_every_row_shows_its_ratio_and_reference() -> None:
    table = format_table(ROWS, TARGETS)
    assert "1.00 (reference)" in table.splitlines()[1]
    assert "0.10 of ceiling" in table and "0.04 of 1 s target" in table
    assert "MISSED ingest / raw: 0.20 (>= 0.3)" in table


def test_the_block_names_command_machine_and_date() -> None:
    text = block()
    assert text.startswith(BEGIN) and text.endswith(END)
    assert "Command: `python -m benchmarks` — run 2024-05-01 10:00 UTC, took 280 s; code: commit abc1234." in text
    assert "a CPU, 2 cores, 3.9 GB RAM, Linux 6, Python 3.11.7; nats-py 2.16.0." in text
    assert [line.split("`")[1] for line in text.splitlines() if line.startswith("| `")] == [
        "ceiling", "pipeline-1", "latency-p99",
    ]
    assert "| ingest / raw | 0.20 | >= 0.3 | **missed** |" in text


def test_rewriting_keeps_the_text_around_the_block(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\nintro\n")
    write_report(report, block())
    first = report.read_text()
    assert first.startswith("# Benchmarks\n\nintro\n\n" + BEGIN)
    report.write_text(first + "\n## Profiling\n\nnotes by hand\n")
    write_report(report, block().replace("280 s", "300 s"))
    second = report.read_text()
    assert second.count(BEGIN) == 1 and "took 300 s" in second and "took 280 s" not in second
    assert second.startswith("# Benchmarks\n\nintro\n") and second.endswith("## Profiling\n\nnotes by hand\n")


def test_a_new_report_gets_a_title(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    write_report(report, block())
    assert report.read_text().startswith("# Benchmarks\n\n" + BEGIN)
