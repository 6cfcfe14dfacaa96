"""Server-rendered SVG bar charts: one bar per window, nothing to download, nothing to run.

The markup is in ``templates/chart/``; every text that reaches it is escaped on its way in by
:func:`~app.dashboard.markup.render`, numbers included (they are formatted from values someone
else wrote into KV). Windows share a time axis (the slots), so charts of one
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
from typing import Final

from app.dashboard.markup import Markup, join, render

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
) -> Markup:
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
    parts = []
    for index, start in enumerate(slots):
        if start not in values:
            continue
        value = values[start]
        where = {
            "x": f"{_LEFT + index * slot + (slot - bar_w) / 2:.1f}", "width": f"{bar_w:.1f}",
            "window": int(start), "value": json.dumps(value), "when": clock_time(start),
        }  # fmt: skip
        if value is None:
            parts.append(render("chart/gap.html", y=base - 2, **where))
            continue
        height = max(1.0, max(0.0, min(1.0, float(value) / top)) * plot_h)
        parts.append(render(
            "chart/bar.html", y=f"{base - height:.1f}", height=f"{height:.1f}", label=_label(float(value), ratio=ratio),
            **where,
        ))  # fmt: skip
    if slots:
        parts.append(render(
            "chart/times.html", left=_LEFT, right=_WIDTH - 4, y=_HEIGHT - 3,
            first=clock_time(slots[0]), last=clock_time(slots[-1]),
        ))  # fmt: skip
    if not any(start in values for start in slots):
        empty = "no results in these windows" if slots else "no windows yet"
        parts.append(render("chart/empty.html", x=_WIDTH / 2, y=_TOP + plot_h / 2, text=empty))
    return render(
        "chart/figure.html", chart_id=chart_id, title=title, width=_WIDTH, height=_HEIGHT, left=_LEFT,
        right=_WIDTH - 4, base=base, y_label_x=_LEFT - 4, top_label_y=_TOP + 8, top=_label(top, ratio=ratio),
        bars=join(parts),
    )
