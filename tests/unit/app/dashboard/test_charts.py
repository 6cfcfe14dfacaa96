"""The SVG bar charts: a slot per window, bars carrying their window and value, gaps and
missing windows told apart, and every text escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from app.dashboard.charts import bar_chart, clock_time

T0 = 1_714_557_600  # 10:00:00 UTC


def bars(svg: str) -> list[dict[str, str]]:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    return [dict(rect.attrib) for rect in root.iter("rect")]


def test_a_bar_per_window_with_a_value_a_tick_for_none_nothing_for_a_missing_window() -> None:
    slots = [T0, T0 + 60, T0 + 120, T0 + 180]
    svg = bar_chart("engagement.answers", "Answers", slots, {T0: 4.0, T0 + 60: None, T0 + 180: 0.0})
    found = bars(svg)
    assert [(b["class"], b["data-window"], b["data-value"]) for b in found] == [
        ("bar", str(T0), "4.0"), ("gap", str(T0 + 60), "null"), ("bar", str(T0 + 180), "0.0"),
    ]  # fmt: skip
    zero = found[2]
    assert float(zero["height"]) == 1.0  # a zero is visible, unlike a window without a result
    xs = [float(b["x"]) for b in found]
    assert xs == sorted(xs) and xs[2] - xs[1] > xs[1] - xs[0]  # the missing window keeps its slot


PLOT_HEIGHT = 98  # the chart's height less its margins


def test_ratios_are_on_a_fixed_percent_scale_and_counts_on_a_round_one() -> None:
    ratio = bar_chart("a", "Accuracy", [T0], {T0: 0.5}, ratio=True)
    assert ">100%<" in ratio and "<title>10:00:00: 50%</title>" in ratio
    assert [float(b["height"]) for b in bars(ratio)] == [PLOT_HEIGHT / 2]
    counts = bar_chart("b", "Answers", [T0, T0 + 60], {T0: 7.0, T0 + 60: 14.0})
    assert ">20<" in counts  # the axis top: a round number above the largest value
    assert [float(b["height"]) for b in bars(counts)] == [round(PLOT_HEIGHT * 7 / 20, 1), round(PLOT_HEIGHT * 14 / 20, 1)]


def test_an_empty_chart_says_so() -> None:
    assert "no windows yet" in bar_chart("a", "Accuracy", [], {})
    assert "no results in these windows" in bar_chart("a", "Accuracy", [T0], {})


def test_text_is_escaped() -> None:
    svg = bar_chart('x"><script>', "<b>Title</b> & more", [T0], {T0: 1.0})
    assert "<script>" not in svg and "<b>" not in svg
    assert 'data-chart="x&quot;&gt;&lt;script&gt;"' in svg
    assert "&lt;b&gt;Title&lt;/b&gt; &amp; more" in svg
    ET.fromstring(svg)


def test_labels_are_utc_clock_times() -> None:
    assert clock_time(T0 + 3661) == "11:01:01"
    svg = bar_chart("a", "A", [T0, T0 + 60], {T0: 1.0})
    assert re.findall(r'class="x (?:first|last)"[^>]*>([^<]+)<', svg) == ["10:00:00", "10:01:00"]
