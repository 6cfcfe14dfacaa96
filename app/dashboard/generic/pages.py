"""The generic view's HTML: the list of metrics, a metric's page of keys, a student's panels of
the metrics without a page of their own. Built from the metric's description alone
(:class:`~contract.registry.MetricDescription`), so a metric loaded from a file is shown like any.

The markup is in ``templates/metrics/``. Every value is escaped on its way in by
:func:`~app.dashboard.markup.render`: a key, a value or a name from the bucket or the registry is
text. Each value is shown (null as "–") and carried exactly in ``data-value`` (its JSON) with
``data-key`` naming its KV key, as on the other pages. A value a result carries that its
description does not name is shown too, in the last column: readers are tolerant (docs/api.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

from app.dashboard.markup import Markup, join, render
from app.dashboard.pages import page_links, student_href
from app.dashboard.state import Window
from contract.registry import MetricDescription, MetricVersion, WindowDescription

__all__ = [
    "METRICS_PATH",
    "METRIC_PAGER_ID",
    "METRIC_ROWS_ID",
    "NULL",
    "STUDENT_FIELD",
    "key_row",
    "key_row_id",
    "metric_body",
    "metric_href",
    "metric_pager",
    "metric_panel",
    "metric_panels",
    "metric_panels_id",
    "metrics_body",
    "shown_value",
]

METRICS_PATH: Final = "/dashboard/metrics"
METRIC_ROWS_ID: Final = "keys"
METRIC_PAGER_ID: Final = "pager"
#: the key field naming a student: the one read access is decided by, and student pages link to
STUDENT_FIELD: Final = "student_id"
#: what a null value (or a value a result lacks) shows
NULL: Final = "–"
#: the type shown for a value a result carries that its description does not name
_UNDESCRIBED: Final = "not described"


def key_row_id(key: str) -> str:
    return f"key-{key}"


def metric_panels_id(student_id: str) -> str:
    return f"metric-panels-{student_id}"


def metric_href(name: str, *, version: int | None = None, after: str | None = None, path: str = METRICS_PATH) -> str:
    """A metric's page (``path``: or its stream's, which takes ``metric`` as a parameter)."""
    params: dict[str, str | int] = {} if path == METRICS_PATH else {"metric": name}
    if version is not None:
        params["version"] = version
    if after is not None:
        params["after"] = after
    base = f"{METRICS_PATH}/{name}" if path == METRICS_PATH else path
    return f"{base}?{urlencode(params)}" if params else base


def shown_value(value: Any) -> str:
    """A value as a cell shows it: numbers rounded to 4 significant digits, or to a whole number
    from 1000 on (the exact one is in ``data-value``), text as it is, anything else as JSON."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.0f}" if value.is_integer() or abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _kind(value: Any) -> str:
    """The cell's class: numbers are right-aligned, nulls greyed."""
    if value is None:
        return "none"
    return "num" if isinstance(value, int | float) and not isinstance(value, bool) else "text"


def _window_text(window: WindowDescription) -> str:
    if window.kind == "session":
        return f"session, {window.gap_seconds:g} s apart"
    if window.size_seconds is not None and window.size_seconds == window.step_seconds:
        return f"{window.kind}, {window.size_seconds:g} s"
    return f"{window.kind}, {window.size_seconds or 0:g} s every {window.step_seconds or 0:g} s"


def _value_types(values: Mapping[str, str]) -> Markup:
    return join((render("metrics/value-type.html", field=name, type=kind) for name, kind in values.items()), ", ")


def metrics_body(catalog: Mapping[str, Sequence[MetricVersion]], defaults: Mapping[str, MetricDescription]) -> Markup:
    """The list of metrics: each one's default version's description (``defaults``), and its
    versions."""
    rows = []
    for name, versions in catalog.items():
        description = defaults.get(name)
        if description is None:
            continue
        listed = join(
            (f"{v.description.version}{'' if v.complete else ' (backfilling)'}" for v in versions), ", "
        )
        rows.append(render(
            "metrics/list-row.html", metric=name, href=metric_href(name), versions=listed,
            key_fields=", ".join(description.key_fields), window=_window_text(description.window),
            grace=f"{description.grace_seconds:g} s", values=_value_types(description.values),
        ))  # fmt: skip
    empty = "" if rows else render("metrics/no-metrics.html")
    return render("metrics/list.html", rows=join(rows), empty=empty)


def _utc(value: object, fallback: int | None = None) -> str:
    """A window bound as a result gives it (RFC 3339 text, shown as it is), or from the key's start."""
    if isinstance(value, str):
        return value
    if fallback is not None:
        return datetime.fromtimestamp(fallback, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return NULL


def _heads(description: MetricDescription) -> Markup:
    heads = [render("metrics/head.html", field=field, type="key") for field in description.key_fields]
    heads += [render("metrics/head.html", field=field, type="UTC") for field in ("start", "end")]
    heads += [render("metrics/head.html", field=name, type=kind) for name, kind in description.values.items()]
    heads.append(render("metrics/head.html", field="other values", type=_UNDESCRIBED))
    return join(heads)


def _value_cells(description: MetricDescription, window: Window) -> list[Markup]:
    values = window.values
    cells = [
        render(
            "metrics/value-cell.html", kind=_kind(values.get(name)), key=window.key, field=name,
            value=json.dumps(values.get(name)), shown=shown_value(values.get(name)),
        )
        for name in description.values
    ]
    others = [
        render("metrics/other.html", key=window.key, field=name, value=json.dumps(value), shown=shown_value(value))
        for name, value in sorted(values.items())
        if name not in description.values
    ]
    cells.append(render("metrics/others-cell.html", others=join(others, " ")))
    return cells


def _when_cells(window: Window) -> list[Markup]:
    bounds = window.value.get("window")
    bounds = bounds if isinstance(bounds, dict) else {}
    return [
        render("metrics/when-cell.html", key=window.key, field="start", shown=_utc(bounds.get("start"), window.start)),
        render("metrics/when-cell.html", key=window.key, field="end", shown=_utc(bounds.get("end"))),
    ]


def _key_cells(description: MetricDescription, parts: Sequence[str]) -> list[Markup]:
    cells = []
    for field, part in zip(description.key_fields, parts, strict=False):
        if field == STUDENT_FIELD:
            cells.append(render("metrics/student-cell.html", field=field, href=student_href(part), shown=part))
        else:
            cells.append(render("metrics/key-cell.html", field=field, shown=part))
    # A key with fewer parts than the description names (another version's writer): cells still line up.
    cells += [render("metrics/key-cell.html", field=f, shown=NULL) for f in description.key_fields[len(parts) :]]
    return cells


def _cells(description: MetricDescription, key: str, window: Window) -> Markup:
    return join([*_key_cells(description, key.split(".")), *_when_cells(window), *_value_cells(description, window)])


def key_row(description: MetricDescription, key: str, window: Window) -> Markup:
    """One row of a metric's page: ``key``'s latest final window."""
    return render("metrics/row.html", id=key_row_id(key), key=key, cells=_cells(description, key, window))


def metric_pager(*, first: int, shown: int, total: int, previous: str | None, following: str | None) -> Markup:
    """Where a page of a metric is among its keys, with links to the previous and next page."""
    where = f"Keys {first}-{first + shown - 1} of {total}, in order" if shown else f"{total} keys with final windows"
    return render("metrics/pager.html", id=METRIC_PAGER_ID, where=where, links=page_links(previous, following))


def metric_body(
    description: MetricDescription, versions: Sequence[int], rows: Sequence[Markup], *, pager: Markup, after: str | None
) -> Markup:
    """A metric version's page: its description, and a row per key (the page's ``rows``)."""
    others = [v for v in versions if v != description.version]
    listed = (
        "Other versions: " + ", ".join(str(v) for v in others) + " (add ?version=N)." if others else ""
    )
    return render(
        "metrics/body.html", metric=description.name, version=description.version, versions=listed,
        key_fields=", ".join(description.key_fields), window=_window_text(description.window),
        grace=f"{description.grace_seconds:g}", pager=pager, heads=_heads(description), rows_id=METRIC_ROWS_ID,
        after=after or "", rows=join(rows),
    )  # fmt: skip


def metric_panel(description: MetricDescription, windows: Sequence[tuple[str, Window]]) -> Markup:
    """A student's recent windows of one metric, newest first: ``(key, window)`` pairs."""
    rows = [
        render("metrics/panel-row.html", key=key, start=window.start, cells=_cells(description, key, window))
        for key, window in windows
    ]
    heading = f"{description.name} (version {description.version})"
    return render(
        "metrics/panel.html", metric=description.name, version=description.version, heading=heading,
        href=metric_href(description.name, version=description.version), heads=_heads(description), rows=join(rows),
    )  # fmt: skip


def metric_panels(student_id: str, panels: Sequence[Markup]) -> Markup:
    """The part of a student's page that shows the metrics without a page of their own."""
    return render("metrics/panels.html", id=metric_panels_id(student_id), panels=join(panels))
