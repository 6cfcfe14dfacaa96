"""The dashboard for educators and parents: HTML pages served by the web process, live as windows close.

- ``handlers``  the pages' request handlers, and :func:`add_dashboard` that routes to them
- ``live``      one watch of the ``metrics`` bucket per web process, fanned out to open pages
- ``state``     what the dashboard knows: recent final windows, and who is struggling
- ``overview``  one open page of the classroom, and the patches that keep it current
- ``pages``     what goes into the pages' HTML; ``charts`` the SVG bar charts in it
- ``generic/``  the view of any metric from its description: the metrics list, a page per
  metric, a student's panels of the metrics without charts of their own
- ``markup``    fills in the templates, escaping every value on its way in
- ``templates/`` the markup of the pages, their fragments and the charts (``string.Template``)
- ``static/``   the pages' script and style sheet (no CDN: the dashboard works offline)
"""

from app.dashboard.handlers import DASHBOARD, Dashboard, add_dashboard

__all__ = ["DASHBOARD", "Dashboard", "add_dashboard"]
