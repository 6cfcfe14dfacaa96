"""The generic view's HTML: columns from the description, every value shown and carried exactly,
values no description names shown too, null as a dash, and everything escaped, hostile keys,
values and names included."""

from __future__ import annotations

import json
from typing import Any

from app.dashboard.generic.pages import NULL, key_row, metric_panel, metrics_body, shown_value
from app.dashboard.state import Window
from contract.registry import MetricDescription, MetricVersion, WindowDescription
from tests.unit.app.dashboard.test_pages import Elements

HOSTILE = "<script>alert(1)</script>"


def describe(name: str = "hints", values: dict[str, str] | None = None, **fields: Any) -> MetricDescription:
    return MetricDescription(
        name=name, key_fields=fields.pop("key_fields", ("student_id",)),
        window=WindowDescription(kind="tumbling", size_seconds=60, step_seconds=60), grace_seconds=10,
        values=values if values is not None else {"hints": "integer", "share": "number?", "note": "string"},
        **fields,
    )  # fmt: skip


def window(key: str, values: dict[str, Any], start: int = 1_714_557_600) -> Window:
    value = {"metric": "hints", "final": True, "events": 1, "values": values,
             "window": {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T10:01:00Z"}}  # fmt: skip
    return Window(key, start, value)


def cells(html: str) -> dict[str, tuple[str | None, str | None]]:
    """field -> (data-key, data-value) of every element carrying a value."""
    return {
        str(attrs["data-field"]): (attrs.get("data-key"), attrs.get("data-value"))
        for attrs in Elements(html).with_attr("data-value")
    }


def test_a_row_shows_the_key_the_window_and_every_value_exactly() -> None:
    html = key_row(describe(), "s1", window("hints.s1.1714557600", {"hints": 3, "share": 0.1 + 0.2, "note": "ok"}))
    assert cells(html) == {
        "hints": ("hints.s1.1714557600", "3"),
        "share": ("hints.s1.1714557600", "0.30000000000000004"),  # exact, while the cell shows 0.3
        "note": ("hints.s1.1714557600", '"ok"'),
    }
    assert ">0.3<" in html and 'href="/dashboard/students/s1"' in html
    assert "2024-05-01T10:00:00Z" in html and "2024-05-01T10:01:00Z" in html
    (row,) = [attrs for tag, attrs in Elements(html).tags if tag == "tr"]
    assert (row["id"], row["data-order"]) == ("key-s1", "s1")


def test_null_and_missing_values_show_a_dash() -> None:
    html = key_row(describe(), "s1", window("hints.s1.0", {"hints": 1, "share": None}))
    assert cells(html)["share"] == ("hints.s1.0", "null")
    assert cells(html)["note"] == ("hints.s1.0", "null")  # described, absent from this result
    assert html.count(f">{NULL}<") == 2


def test_values_the_description_does_not_name_are_shown_not_dropped() -> None:
    html = key_row(describe(), "s1", window("hints.s1.0", {"hints": 1, "extra": [1, 2], "flag": True}))
    assert cells(html)["extra"] == ("hints.s1.0", "[1, 2]")
    assert cells(html)["flag"] == ("hints.s1.0", "true")
    assert "extra: [1, 2]" in html and "flag: true" in html


def test_hostile_keys_values_and_names_are_text() -> None:
    description = describe(name="h", values={HOSTILE: "string", "note": HOSTILE}, key_fields=(HOSTILE, "student_id"))
    value = {HOSTILE: HOSTILE, "note": f'"{HOSTILE}', f"x{HOSTILE}": HOSTILE}
    html = key_row(description, f"{HOSTILE}.s1", window(f"h.{HOSTILE}.s1.0", value))
    listing = metrics_body({"h": [MetricVersion(description=description)]}, {"h": description})
    panel = metric_panel(description, [(f"{HOSTILE}.s1", window("h.x.s1.0", value))])
    for page in (html, listing, panel):
        assert "<script" not in page, page
        Elements(page)  # well formed
    assert cells(html)[HOSTILE] == (f"h.{HOSTILE}.s1.0", json.dumps(HOSTILE))
    assert f'data-type="{HOSTILE.replace("<", "&lt;").replace(">", "&gt;")}"' in listing


def test_the_header_gives_each_values_type() -> None:
    panel = metric_panel(describe(), [("s1", window("hints.s1.0", {"hints": 1}))])
    heads = {attrs["data-field"]: attrs["data-type"] for tag, attrs in Elements(panel).tags if tag == "th"}
    assert heads == {"student_id": "key", "start": "UTC", "end": "UTC", "hints": "integer", "share": "number?",
                     "note": "string", "other values": "not described"}  # fmt: skip


def test_the_list_of_metrics_says_what_each_is() -> None:
    one, two = describe(), describe(version=2, values={"hints": "integer"})
    catalog = {"hints": [MetricVersion(description=one), MetricVersion(description=two)]}
    html = metrics_body(catalog, {"hints": two})
    assert 'href="/dashboard/metrics/hints"' in html and "tumbling, 60 s" in html and "10 s" in html
    assert 'data-field="hints" data-type="integer"' in html and "share" not in html  # the default version's
    assert ">1, 2<" in html
    assert "No worker has described a metric yet" in metrics_body({}, {})


def test_values_are_shown_rounded_and_as_json_when_not_scalars() -> None:
    assert [shown_value(v) for v in (None, True, 7, 2.0, 1 / 3, 123456.789, 1e20, "a", {"b": 1})] == [
        NULL, "true", "7", "2", "0.3333", "123457", "100000000000000000000", "a", '{"b": 1}',
    ]
