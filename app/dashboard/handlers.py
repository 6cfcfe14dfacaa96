"""The dashboard for educators and parents, served by the web process.

=====================================  ===================================================
``GET /``                              redirects to the overview
``GET /dashboard``                     the classroom: every student's latest windows, the
                                       struggling ones marked (the rule is on the page)
``GET /dashboard/students/{id}``       one student: a chart of each metric over recent windows
``GET /dashboard/stream[?student=id]`` server-sent events: ``patch`` events carrying an
                                       element id and its new HTML, sent as windows close
``GET /dashboard/static/...``          the page's script and style sheet (no CDN: works offline)
=====================================  ===================================================

Pages are rendered on the server (:mod:`app.dashboard.pages`, SVG charts from
:mod:`app.dashboard.charts`); the script only swaps in the fragments the stream sends. A stream
starts with a snapshot of what its page shows, so a reconnecting page catches up.

These are HTML pages, not the API: the OpenAPI document does not list them, and they are added
by :func:`add_dashboard` next to :func:`app.web.make_web_app`'s routes rather than inside it.
On shutdown :meth:`Dashboard.close` must come before the request drain, since open streams
would otherwise hold the drain until its deadline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

from aiohttp import web

from app.dashboard.live import LiveClass, SubscriptionEnded
from app.dashboard.pages import (
    ROWS_ID,
    SUMMARY_ID,
    overview_page,
    panels_id,
    row_id,
    student_page,
    student_panels,
    student_row,
    summary,
)
from app.dashboard.state import StudentState
from bridges.public.metrics_reader import MetricsReader
from contract.names import ID_SPELLING, is_id

__all__ = ["DASHBOARD", "Dashboard", "STATIC_DIR", "add_dashboard"]

log = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).with_name("static")
_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Dashboard:
    """The dashboard's handlers over one :class:`LiveClass`.

    Args:
        reader: the web process's metrics reader (started and closed by its owner).
        window_seconds, grace_seconds: shown on the pages, so readers know when to expect data.
        keepalive: seconds of quiet after which a stream sends a comment, so proxies keep it open.
    """

    def __init__(
        self, reader: MetricsReader, *, window_seconds: int, grace_seconds: int, keepalive: float = 15.0
    ) -> None:
        self.live = LiveClass(reader)
        self._window = window_seconds
        self._grace = grace_seconds
        self._keepalive = keepalive

    async def close(self) -> None:
        """End every open stream and stop following the bucket. Idempotent."""
        await self.live.close()

    async def lifespan(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: follow the bucket while the application runs."""
        await self.live.start()
        yield
        await self.close()

    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/dashboard")

    async def overview(self, request: web.Request) -> web.Response:
        page = overview_page(self.live.state, window_seconds=self._window, grace_seconds=self._grace)
        return web.Response(text=page, content_type="text/html", headers=_HEADERS)

    async def student(self, request: web.Request) -> web.Response:
        student_id = request.match_info["student_id"]
        if not is_id(student_id):
            return web.Response(
                status=404, text=f"no such student: ids are {ID_SPELLING}", headers=_HEADERS
            )
        student = self.live.state.student(student_id) or StudentState(student_id)
        return web.Response(
            text=student_page(student, window_seconds=self._window), content_type="text/html", headers=_HEADERS
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        student_id = request.query.get("student")
        if student_id is not None and not is_id(student_id):
            return web.Response(status=404, text="no such student", headers=_HEADERS)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        try:
            with self.live.subscribe() as subscription:
                await response.write(b"retry: 2000\n\n")
                await self._send(response, self._patches(student_id, None))
                while True:
                    changed = await subscription.changes(self._keepalive)
                    if not changed:
                        await response.write(b": keep-alive\n\n")
                    elif student_id is None or student_id in changed:
                        await self._send(response, self._patches(student_id, changed))
        except SubscriptionEnded:
            pass
        except ConnectionResetError:
            log.debug("a dashboard page went away")
        return response

    def _patches(self, student_id: str | None, changed: set[str] | None) -> list[dict[str, str]]:
        """What to swap in: the overview's changed rows and summary, or one student's panels.

        ``changed`` None: everything the page shows (the snapshot a stream starts with).
        """
        state = self.live.state
        if student_id is not None:
            student = state.student(student_id) or StudentState(student_id)
            return [{"id": panels_id(student_id), "html": student_panels(student, window_seconds=self._window)}]
        students = state.students if changed is None else [s for s in state.students if s.student_id in changed]
        patches = [{"id": row_id(s.student_id), "html": student_row(s), "parent": ROWS_ID} for s in students]
        patches.append({"id": SUMMARY_ID, "html": summary(state)})
        return patches

    @staticmethod
    async def _send(response: web.StreamResponse, patches: list[dict[str, str]]) -> None:
        data = "".join(f"event: patch\ndata: {json.dumps(patch)}\n\n" for patch in patches)
        await response.write(data.encode())


DASHBOARD: Final = web.AppKey("dashboard", Dashboard)


def add_dashboard(
    app: web.Application, reader: MetricsReader, *, window_seconds: int, grace_seconds: int
) -> Dashboard:
    """Add the dashboard's routes to ``app``; it follows the bucket while ``app`` runs."""
    dashboard = Dashboard(reader, window_seconds=window_seconds, grace_seconds=grace_seconds)
    app[DASHBOARD] = dashboard
    app.cleanup_ctx.append(dashboard.lifespan)
    app.router.add_get("/", dashboard.home)
    app.router.add_get("/dashboard", dashboard.overview)
    app.router.add_get("/dashboard/students/{student_id}", dashboard.student)
    app.router.add_get("/dashboard/stream", dashboard.stream)
    app.router.add_static("/dashboard/static", STATIC_DIR)
    return dashboard
