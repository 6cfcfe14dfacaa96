"""The dashboard's generic view: any metric the registry knows, shown from its description alone.

- ``state``  each metric version's keys and their newest final windows, bounded
- ``pages``  the list of metrics, a metric's page, a student's panels of metrics (HTML)
- ``view``   one open metric page or student panel, for one reader: rows and live patches

The classroom overview and the student charts (:mod:`app.dashboard.pages`) are refinements of
the built-in metrics beside it. The modules are imported by their path (``state`` is imported by
:mod:`app.dashboard.live`, which ``view`` imports in turn), so this package imports none of them.
"""

__all__: list[str] = []
