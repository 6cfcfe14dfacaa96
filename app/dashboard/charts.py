"""Server-rendered SVG bar charts: one bar per window, nothing to download, nothing to run.

Every text that reaches the markup is escaped here, numbers included (they are formatted from
values someone else wrote into KV). Windows share a time axis (the slots), so charts of one
student line up; a window whose result has no value (an accuracy without answers) is a short
grey tick, visibly "nothing to measure" rather than zero, and a window without a result is
left empty.

Each bar carries ``data-window`` (the window start, epoch seconds) and ``data-value`` (the value
as JSON), so a test or a script can read the chart without parsing drawings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Final

__all__ = ["bar_chart", "clock_time"]

_WIDTH: Final = 360
_HEIGHT: Final = 120
_LEFT: Final = 34  # room for the y labels
_BOTTOM: Final = 16  # room for the x labels
_TOP: Final = 6


def clock_time(epoch_seconds: int) -> str:
    """``HH:MM:SS`` in UTC: window starts are whole seconds."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%H:%M:%S")


def _label(value: float, *, ratio: bool) -> str:
    if ratio:
        return f"{value:.0%}"
    return f"{value:.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:.1f}"


def _scale_top(values: Sequence[float], *, ratio: bool) -> float:
    """1 for ratios; otherwise a round number at or above the largest value."""
    if ratio:
        return 1.0
    largest = max(values, default=0.0)
    if largest <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(largest))
    for step in (1, 2, 5, 10):
        if step * magnitude >= largest:
            return float(step * magnitude)
    return float(10 * magnitude)


def bar_chart(
    chart_id: str, title: str, slots: Sequence[int], values: Mapping[int, float | None], *, ratio: bool = False
) -> str:
    """A ``<figure>`` with a slot per window start in ``slots`` (oldest on the left).

    ``values`` maps a start to its value: a bar; to None: a grey tick (a result with nothing to
    measure); a start it lacks gets nothing (no result in that window). ``ratio`` values are
    shares in [0, 1], shown as percentages on a fixed 0-100 % scale. A zero is a one-pixel bar,
    so it differs from no result.
    """
    present = [float(v) for start in slots if (v := values.get(start)) is not None]
    top = _scale_top(present, ratio=ratio)
    plot_w = _WIDTH - _LEFT - 4
    plot_h = _HEIGHT - _TOP - _BOTTOM
    slot = plot_w / max(1, len(slots))
    bar_w = max(1.0, slot * 0.75)
    base = _TOP + plot_h
    parts = [
        f'<line class="axis" x1="{_LEFT}" y1="{base}" x2="{_WIDTH - 4}" y2="{base}"/>',
        f'<text class="y" x="{_LEFT - 4}" y="{_TOP + 8}">{escape(_label(top, ratio=ratio))}</text>',
        f'<text class="y" x="{_LEFT - 4}" y="{base}">0</text>',
    ]
    for index, start in enumerate(slots):
        if start not in values:
            continue
        value = values[start]
        x = _LEFT + index * slot + (slot - bar_w) / 2
        when = escape(clock_time(start))
        attrs = f'x="{x:.1f}" width="{bar_w:.1f}" data-window="{int(start)}" data-value="{escape(json.dumps(value))}"'
        if value is None:
            parts.append(f'<rect class="gap" y="{base - 2}" height="2" {attrs}><title>{when}: nothing to measure</title></rect>')
            continue
        height = max(1.0, max(0.0, min(1.0, float(value) / top)) * plot_h)
        label = escape(_label(float(value), ratio=ratio))
        parts.append(
            f'<rect class="bar" y="{base - height:.1f}" height="{height:.1f}" {attrs}><title>{when}: {label}</title></rect>'
        )
    if slots:
        parts.append(f'<text class="x first" x="{_LEFT}" y="{_HEIGHT - 3}">{escape(clock_time(slots[0]))}</text>')
        parts.append(f'<text class="x last" x="{_WIDTH - 4}" y="{_HEIGHT - 3}">{escape(clock_time(slots[-1]))}</text>')
    if not any(start in values for start in slots):
        empty = "no results in these windows" if slots else "no windows yet"
        parts.append(f'<text class="empty" x="{_WIDTH / 2}" y="{_TOP + plot_h / 2}">{empty}</text>')
    return (
        f'<figure class="chart" data-chart="{escape(chart_id)}"><figcaption>{escape(title)}</figcaption>'
        f'<svg viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="{escape(title)}">'
        + "".join(parts)
        + "</svg></figure>"
    )
