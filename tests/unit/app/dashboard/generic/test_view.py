"""A metric's page and its patches, and a student's generic panels: the rows that change, enter or
leave a page, what a reader may see, and what one update sends, which does not grow with the keys."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from app.access import EVERY_STUDENT
from app.dashboard.generic.state import KeyChange, KeyedMetrics
from app.dashboard.generic.view import KeyAccess, MetricView, StudentMetrics
from app.dashboard.live import Subscription
from app.dashboard.state import HISTORY, Window
from contract.names import metric_series
from tests.unit.app.dashboard.generic.test_pages import describe
from tests.unit.app.dashboard.test_pages import Only

HINTS = describe()
GAMES = describe(name="games", key_fields=("student_id", "game_id"), values={"wins": "integer"})


def put(metrics: KeyedMetrics, key: str, start: int = 0, version: int = 1, metric: str = "hints", **values: Any) -> set[KeyChange]:
    series = metric_series(metric, version)
    raw = json.dumps({"metric": metric, "final": True, "events": 1, "values": {"hints": 1, **values}}).encode()
    window = Window.final(f"{series}.{key}.{start}", start, raw)
    assert window is not None
    return set(metrics.put(series, key.split("."), window))


def filled(keys: int) -> KeyedMetrics:
    metrics = KeyedMetrics()
    for number in range(keys):
        put(metrics, f"s{number:05d}")
    return metrics


def ids(patches: list[dict[str, str]]) -> list[str]:
    return [patch["id"] for patch in patches]


def test_a_page_shows_its_keys_and_where_it_is_among_them() -> None:
    view = MetricView(filled(5), HINTS, EVERY_STUDENT, after="s00001", rows=2)
    snapshot = view.snapshot()
    assert ids(snapshot) == ["key-s00002", "key-s00003", "pager"]
    assert [p.get("order") for p in snapshot[:2]] == ["s00002", "s00003"]
    assert "Keys 3-4 of 5" in snapshot[2]["html"]
    assert 'href="/dashboard/metrics/hints?version=1&amp;after=s00003"' in snapshot[2]["html"]  # next
    assert 'href="/dashboard/metrics/hints?version=1"' in snapshot[2]["html"]  # previous: the first page
    page = view.page([1, 2])
    assert 'data-after="s00001"' in page and "Other versions: 2" in page and page.count("<tr id=") == 2


def test_a_change_off_the_page_sends_the_pager_only_and_one_on_it_its_row() -> None:
    metrics = filled(1_000)
    view = MetricView(metrics, HINTS, EVERY_STUDENT, rows=2)
    view.snapshot()
    assert ids(view.patches(put(metrics, "s00500", 60))) == ["pager"]
    patches = view.patches(put(metrics, "s00001", 60, hints=7))
    assert ids(patches) == ["key-s00001", "pager"]
    assert 'data-key="hints.s00001.60" data-field="hints" data-value="7"' in patches[0]["html"]


def test_a_key_new_to_the_page_pushes_its_last_row_off_and_a_forgotten_one_leaves() -> None:
    metrics = KeyedMetrics(limit=3)
    for key in ("b", "c", "d"):
        put(metrics, key)
    view = MetricView(metrics, HINTS, EVERY_STUDENT, rows=2)
    assert ids(view.snapshot()) == ["key-b", "key-c", "pager"]
    # "a" sorts first; the metric keeps 3 keys, so "b", the quietest, is forgotten.
    assert ids(view.patches(put(metrics, "a"))) == ["key-b", "key-a", "pager"]
    assert view.patches(put(metrics, "a")) == []  # nothing changed: not even the pager


def test_other_versions_and_metrics_are_not_this_pages_business() -> None:
    metrics = filled(3)
    view = MetricView(metrics, HINTS, EVERY_STUDENT)
    view.snapshot()
    assert view.patches(put(metrics, "s00001", 60, version=2)) == []
    assert view.patches(put(metrics, "s00001", 60, metric="games")) == []
    assert view.patches({"s00001"}) == []  # a student of the classroom
    assert not view.wants(KeyChange("hints_v2", "s00001")) and not view.wants("s00001")
    assert view.wants(KeyChange("hints", "s00001"))


def test_a_page_opened_before_the_first_window_fills_as_windows_close() -> None:
    for reader in (EVERY_STUDENT, Only("s1")):
        metrics = KeyedMetrics()
        view = MetricView(metrics, HINTS, reader)
        assert ids(view.snapshot()) == ["pager"]
        assert ids(view.patches(put(metrics, "s1"))) == ["key-s1", "pager"]
        # Another student's key: a row for a reader of every student, nothing at all for the other.
        assert ids(view.patches(put(metrics, "s2"))) == (["key-s2", "pager"] if reader is EVERY_STUDENT else [])


def test_a_reader_of_some_students_sees_their_keys_only() -> None:
    metrics = filled(4)
    view = MetricView(metrics, HINTS, Only("s00001", "s00003"))
    snapshot = view.snapshot()
    assert ids(snapshot) == ["key-s00001", "key-s00003", "pager"]
    assert "s00002" not in json.dumps(snapshot) and "of 2" in snapshot[-1]["html"]
    assert "s00002" not in view.page([1])
    # Another student's window: not sent, not even the pager; its own: sent.
    assert view.patches(put(metrics, "s00002", 60)) == []
    assert not view.wants(KeyChange("hints", "s00002"))
    assert ids(view.patches(put(metrics, "s00004", 60) | put(metrics, "s00003", 60))) == ["key-s00003", "pager"]


def test_the_student_field_is_found_wherever_it_is_in_the_key() -> None:
    by_class = describe(key_fields=("class_id", "student_id"))
    access = KeyAccess(by_class, Only("s1"))
    assert access.any and access.may_see("c1.s1") and not access.may_see("c1.s2") and not access.may_see("s1")


def test_a_metric_not_keyed_by_student_is_for_readers_of_every_student() -> None:
    by_class = describe(key_fields=("class_id",))
    assert not KeyAccess(by_class, Only("c1")).any and not KeyAccess(by_class, Only("c1")).may_see("c1")
    assert KeyAccess(by_class, EVERY_STUDENT).any and KeyAccess(by_class, EVERY_STUDENT).may_see("c1")


def test_a_students_panels_show_their_newest_windows_of_each_metric_bounded() -> None:
    metrics = KeyedMetrics()
    for start in range(0, 60 * (HISTORY + 5), 60):
        put(metrics, "s1", start, hints=start)
        put(metrics, "s1.g1", start, metric="games", wins=1)
        put(metrics, "s1.g2", start, metric="games", wins=2)
    put(metrics, "s2", 0)
    panels = StudentMetrics(metrics, [HINTS, GAMES], "s1")
    html = panels.panels()
    assert html.count('data-key-of="s1"') == HISTORY  # the newest HISTORY of hints
    assert html.count('data-key-of="s1.g1"') + html.count('data-key-of="s1.g2"') == HISTORY
    assert f'data-window="{60 * (HISTORY + 4)}"' in html and 'data-key-of="s2"' not in html
    assert panels.wants(KeyChange("games", "s1.g9")) and not panels.wants(KeyChange("games", "s2.g1"))
    assert not panels.wants(KeyChange("other", "s1")) and not panels.wants("s1")
    assert panels.patches(put(metrics, "s2", 60)) == []
    assert [p["id"] for p in panels.patches(put(metrics, "s1", 99_999))] == ["metric-panels-s1"]


def test_a_subscription_queues_only_what_its_page_wants() -> None:
    async def scenario() -> set[Any]:
        subscription = Subscription(2, wants=lambda change: change == KeyChange("hints", "s1"))
        for _ in range(10):
            subscription.offer(KeyChange("hints", "s2"))  # a busy key of no interest never overruns it
            subscription.offer("s1")
        subscription.offer(KeyChange("hints", "s1"))
        assert not subscription.ended
        return await subscription.changes(1.0)

    assert asyncio.run(scenario()) == {KeyChange("hints", "s1")}
