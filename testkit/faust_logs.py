"""What faust's worker log says about its last table recovery."""

from __future__ import annotations

__all__ = ["last_recovery_tables", "replayed_records"]


def last_recovery_tables(log: str, changelog: str) -> tuple[dict[int, int], dict[int, int]]:
    """faust's last 'Highwater - Active' and 'Reading Starts At - Active' tables for a changelog.

    Each maps a partition of ``changelog`` to the offset faust printed. faust prints a topic's
    name once and ``〃`` for its further partitions.
    """

    def parse(title: str) -> dict[int, int]:
        block = log.rsplit(title, 1)[1].split("\n+", 2)[1]
        rows: dict[int, int] = {}
        topic = ""
        for line in block.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 3 or not cells[1].isdigit():
                continue
            topic = topic if cells[0] == "〃" else cells[0]
            if topic == changelog:
                rows[int(cells[1])] = int(cells[2])
        return rows

    return parse("Highwater - Active"), parse("Reading Starts At - Active")


def replayed_records(log: str, changelog: str) -> int:
    """Changelog records the last recovery read (highwater - start, summed); 0 if none ran."""
    if "Reading Starts At - Active" not in log:
        return 0
    highwaters, starts = last_recovery_tables(log, changelog)
    return sum(max(0, highwaters[p] - starts.get(p, highwaters[p])) for p in highwaters)
