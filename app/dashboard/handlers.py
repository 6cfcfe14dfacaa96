"""The dashboard for educators and parents, served by the web process.

=====================================  ===================================================
``GET /``                              redirects to the overview
``GET /dashboard[?after=id]``          the classroom, a page of students at a time (by id,
                                       after ``after``): their latest windows, the struggling
                                       ones marked (the rule is on the page)
``GET /dashboard/students/{id}``       one student: a chart of each metric over recent windows
``GET /dashboard/metrics``             every metric the registry knows, with its description
``GET /dashboard/metrics/{metric}``    the latest final window of each key of one metric, a
                                       page of keys at a time (``?version=n&after=key``)
``GET /dashboard/stream[?after=id]``   server-sent events: ``patch`` events carrying an
``GET /dashboard/stream?student=id``   element id and its new HTML, sent as windows close
``GET /dashboard/stream?metric=m``     (a metric's page: ``&version=n&after=key``)
``GET /dashboard/static/...``          the page's script and style sheet (no CDN: works offline)
``POST /dashboard/login``              takes a read token once, from the sign-in form
=====================================  ===================================================

With ``READ_TOKEN`` or ``READ_ACCESS`` set (:mod:`app.access`), the pages and the stream need a
read token: ``Authorization: Bearer <token>``, or the cookie the sign-in form sets (HttpOnly,
SameSite=Strict, path ``/dashboard``, Secure over HTTPS, gone when the browser closes). Without
one a page answers 401 with the form, which posts the token to ``/dashboard/login`` (never in a
URL, so never in an access log) and comes back to the page. A reader sees only the students its
token may read (403 for another's page); the summary counts those students only. On a metric's
page it sees the keys whose ``student_id`` key field is such a student, and nothing of a metric
without a ``student_id`` key field unless it may read every student (403). The root
redirect, the static files and the form are open: they hold no student's data.

Pages are rendered on the server (:mod:`app.dashboard.pages`, SVG charts from
:mod:`app.dashboard.charts`); the script only swaps in the fragments the stream sends. A stream
starts with a snapshot of what its page shows, so a reconnecting page catches up. A page's
cost per update does not grow with the class (:mod:`app.dashboard.overview`), and at most
``DASHBOARD_STREAMS`` streams are open at once: one more is answered 503 with ``Retry-After``
(the browser's EventSource gives up on a 503; the page says to reload). A page that went
away gives its stream's slot back at its next write, within the keep-alive period.

These are HTML pages, not the API: the OpenAPI document does not list them, and they are added
by :func:`add_dashboard` next to :func:`app.web.make_web_app`'s routes rather than inside it.
On shutdown :meth:`Dashboard.close` must come before the request drain, since open streams
would otherwise hold the drain until its deadline.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlencode

from aiohttp import web

from app.access import Reader, ReadGuard, bearer_token
from app.capacity import Capacity
from app.dashboard.generic.pages import metrics_body
from app.dashboard.generic.state import METRIC_KEYS
from app.dashboard.generic.view import KeyAccess, MetricView, StudentMetrics
from app.dashboard.live import Change, LiveClass, SubscriptionEnded
from app.dashboard.overview import OverviewView, Patch
from app.dashboard.pages import login_page, message_page, page, panels_id, student_page, student_panels
from app.dashboard.state import REFINED_SERIES, STUDENTS, ClassState, StudentState
from bridges.public.metric_registry import MetricRegistry
from bridges.public.metrics_reader import MetricsReader
from contract.names import ID_SPELLING, is_id
from contract.registry import MetricDescription, MetricVersion, default_version
from tables.errors import BrokenError, ClosedError

__all__ = ["COOKIE", "DASHBOARD", "Dashboard", "STATIC_DIR", "add_dashboard"]

log = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).with_name("static")
_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: the cookie that keeps a read token the sign-in form was given (base64url: any token fits)
COOKIE: Final = "learning_streams_read"
_COOKIE_PATH: Final = "/dashboard"
_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="read"'}


class Dashboard:
    """The dashboard's handlers over one :class:`LiveClass`.

    Args:
        reader: the web process's metrics reader (started and closed by its owner).
        guard: who may read (None: anyone).
        window_seconds, grace_seconds: shown on the pages, so readers know when to expect data.
        keepalive: seconds of quiet after which a stream sends a comment, so proxies keep it open;
            also how soon the stream of a page that went away notices (aiohttp says nothing of a
            closed connection until a write fails) and gives its slot back.
        streams: streams open at once (``DASHBOARD_STREAMS``).
        students: students kept (``DASHBOARD_STUDENTS``).
        metric_keys: keys kept per metric version (``DASHBOARD_METRIC_KEYS``).
        retry_after: seconds a 503 asks the client to wait.
    """

    def __init__(
        self,
        reader: MetricsReader,
        *,
        guard: ReadGuard | None = None,
        window_seconds: int,
        grace_seconds: int,
        keepalive: float = 5.0,
        streams: int = 100,
        students: int = STUDENTS,
        metric_keys: int = METRIC_KEYS,
        retry_after: int = 2,
    ) -> None:
        self.live = LiveClass(reader, students=students, metric_keys=metric_keys)
        self._registry: MetricRegistry = reader.registry
        self.streams = Capacity(streams)
        self._retry_after = str(retry_after)
        self._guard = guard or ReadGuard(None)
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

    # -- who reads ------------------------------------------------------------------------------

    def _reader(self, request: web.Request) -> Reader | None:
        """The reader of the request's token: its Authorization header, else the cookie."""
        return self._guard.reader(bearer_token(request.headers) or _cookie_token(request))

    async def login(self, request: web.Request) -> web.Response:
        """The sign-in form's POST: a good token goes into the cookie, and back to the page."""
        form = await request.post()
        token, wanted = form.get("token"), form.get("next")
        target = wanted if isinstance(wanted, str) and _is_dashboard_path(wanted) else "/dashboard"
        if not isinstance(token, str) or self._guard.reader(token) is None:
            return _sign_in(target, "That is not a read token; try again.")
        response = web.Response(status=303, headers={**_HEADERS, "Location": target})
        if not self._guard.open:
            response.set_cookie(
                COOKIE, base64.urlsafe_b64encode(token.encode("utf-8", "surrogateescape")).decode("ascii"),
                path=_COOKIE_PATH, httponly=True, samesite="Strict", secure=request.secure,
            )
        return response

    # -- the pages ------------------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.Response:
        reader = self._reader(request)
        if reader is None:
            return _sign_in(request.path_qs)
        after = request.query.get("after")
        if after is not None and not is_id(after):
            return web.Response(status=404, text=f"no such page: ids are {ID_SPELLING}", headers=_HEADERS)
        view = OverviewView(self.live.state, reader, after=after)
        page = view.page(window_seconds=self._window, grace_seconds=self._grace)
        return web.Response(text=page, content_type="text/html", headers=_HEADERS)

    async def student(self, request: web.Request) -> web.Response:
        reader = self._reader(request)
        if reader is None:
            return _sign_in(request.path_qs)
        student_id = request.match_info["student_id"]
        if not is_id(student_id):
            return web.Response(
                status=404, text=f"no such student: ids are {ID_SPELLING}", headers=_HEADERS
            )
        if self._guard.refuses(reader, student_id):
            return web.Response(status=403, text="this token may not read this student", headers=_HEADERS)
        student = self.live.state.student(student_id) or StudentState(student_id)
        generic = StudentMetrics(self.live.metrics, await self._unrefined(), student_id)
        return web.Response(
            text=student_page(student, window_seconds=self._window, metric_panels=generic.panels()),
            content_type="text/html", headers=_HEADERS,
        )

    async def metrics(self, request: web.Request) -> web.Response:
        """Every metric the registry knows."""
        if self._reader(request) is None:
            return _sign_in(request.path_qs)
        catalog = await self._catalog()
        if catalog is None:
            return _UNAVAILABLE.page()
        defaults = {name: chosen.description for name, versions in catalog.items() if (chosen := default_version(versions))}
        body = metrics_body(catalog, defaults)
        return web.Response(text=page("Metrics - learning-streams", "", body), content_type="text/html", headers=_HEADERS)

    async def metric(self, request: web.Request) -> web.Response:
        """One metric version's page of keys."""
        reader = self._reader(request)
        if reader is None:
            return _sign_in(request.path_qs)
        found = await self._metric_view(request.match_info["metric"], request.query, reader)
        if isinstance(found, _Refused):
            return found.page()
        view, description, versions = found
        stream = _metric_stream(description, request.query.get("after"))
        title = f"{description.name} - learning-streams"
        return web.Response(text=page(title, stream, view.page(versions)), content_type="text/html", headers=_HEADERS)

    async def _metric_view(
        self, name: str, query: Mapping[str, str], reader: Reader
    ) -> tuple[MetricView, MetricDescription, list[int]] | _Refused:
        """The page of metric ``name`` the request asks (``?version=``, else the version the API
        reads by default; ``?after=``) for ``reader``, the description and the metric's versions;
        or why not."""
        found = await self._describe(name, query.get("version"))
        if isinstance(found, _Refused):
            return found
        description, versions = found
        after = query.get("after")
        if after is not None and not _is_key(after):
            return _Refused(400, "Bad request", f"after: {after!r} is not a key (its parts, {ID_SPELLING}, joined by dots)")
        if not KeyAccess(description, reader).any:
            return _Refused(403, "Not allowed", _NOT_KEYED_BY_STUDENT.format(name=description.name))
        return MetricView(self.live.metrics, description, reader, after=after), description, versions

    async def _describe(self, name: str, asked: str | None) -> tuple[MetricDescription, list[int]] | _Refused:
        """The description of ``name``'s version ``asked`` (None: the one the API reads by
        default) and the metric's versions, or why not."""
        catalog = await self._catalog()
        if catalog is None:
            return _UNAVAILABLE
        versions = catalog.get(name) if is_id(name) else None
        wanted = int(asked) if asked is not None and asked.isascii() and asked.isdigit() else None
        if is_id(name) and (not versions or (wanted is not None and wanted not in _numbers(versions))):
            # Its worker may have just started: the registry reads its bucket again for a metric
            # or a version it does not know (as the query API finds them on their first request).
            catalog = await self._catalog(reread=(name, wanted))
            if catalog is None:
                return _UNAVAILABLE
            versions = catalog.get(name)
        if not versions:
            known = ", ".join(catalog) or "none yet"
            return _Refused(404, "No such metric", f"No metric {name!r} is described in the registry; known: {known}.")
        numbers = _numbers(versions)
        if asked is None:
            chosen = default_version(versions)
            assert chosen is not None  # versions is not empty
            return chosen.description, numbers
        if wanted is None or wanted not in numbers:
            listed = ", ".join(str(n) for n in numbers)
            return _Refused(400, "Bad request", f"version: {asked!r} is not a version of {name}; its versions: {listed}")
        return next(v.description for v in versions if v.description.version == wanted), numbers

    async def _catalog(self, *, reread: tuple[str, int | None] | None = None) -> dict[str, list[MetricVersion]] | None:
        """Every version of every metric, or None when the registry cannot be read (NATS away);
        ``reread``: a metric (and version) to read the bucket again for, if it is not known."""
        try:
            if reread is not None:
                await self._registry.get(*reread)
            return await self._registry.catalog()
        except (BrokenError, ClosedError) as exc:
            log.warning("the dashboard could not read the metric registry: %s", exc)
            return None

    async def _unrefined(self) -> list[MetricDescription]:
        """The metric versions that have no page or chart of their own: a student's page shows
        them in generic panels (none while the registry cannot be read)."""
        catalog = await self._catalog() or {}
        return [
            version.description
            for versions in catalog.values()
            for version in versions
            if version.description.series not in REFINED_SERIES
        ]

    async def stream(self, request: web.Request) -> web.StreamResponse:
        reader = self._reader(request)
        if reader is None:
            return web.Response(status=401, text="missing or wrong read token", headers={**_HEADERS, **_CHALLENGE})
        feed = await self._feed(request, reader)
        if isinstance(feed, web.Response):
            return feed
        with self.streams.slot() as admitted:
            if not admitted:
                return web.Response(
                    status=503, text=f"{self.streams.limit} dashboard streams are open already; retry later",
                    headers={**_HEADERS, "Retry-After": self._retry_after},
                )
            return await self._follow(request, feed)

    async def _feed(self, request: web.Request, reader: Reader) -> _Feed | web.Response:
        """What the stream the request asks follows, or the answer refusing it."""
        query = request.query
        student_id, after, metric = query.get("student"), query.get("after"), query.get("metric")
        if metric is not None:
            found = await self._metric_view(metric, query, reader)
            return found.text() if isinstance(found, _Refused) else found[0]
        for asked in (student_id, after):
            if asked is not None and not is_id(asked):
                return web.Response(status=404, text="no such student", headers=_HEADERS)
        if student_id is not None and self._guard.refuses(reader, student_id):
            return web.Response(status=403, text="this token may not read this student", headers=_HEADERS)
        if student_id is None:
            return OverviewView(self.live.state, reader, after=after)
        generic = StudentMetrics(self.live.metrics, await self._unrefined(), student_id)
        return _StudentFeed(self.live.state, student_id, self._window, generic)

    async def _follow(self, request: web.Request, feed: _Feed) -> web.StreamResponse:
        """The stream of one page: its snapshot, then its patches as what it shows changes."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        try:
            with self.live.subscribe(wants=feed.wants) as subscription:
                await response.write(b"retry: 2000\n\n")
                await self._send(response, feed.snapshot())
                while True:
                    changed = await subscription.changes(self._keepalive)
                    if not changed:
                        await response.write(b": keep-alive\n\n")
                    elif patches := feed.patches(changed):
                        await self._send(response, patches)
        except SubscriptionEnded:
            pass
        except ConnectionResetError:
            log.debug("a dashboard page went away")
        return response

    @staticmethod
    async def _send(response: web.StreamResponse, patches: list[Patch]) -> None:
        data = "".join(f"event: patch\ndata: {json.dumps(patch)}\n\n" for patch in patches)
        await response.write(data.encode())


class _StudentFeed:
    """One student's page: its charts, whole, when the student changed; its generic panels,
    whole, when one of its keys of a metric they show changed."""

    def __init__(self, state: ClassState, student_id: str, window_seconds: int, generic: StudentMetrics) -> None:
        self._state = state
        self._student_id = student_id
        self._window = window_seconds
        self._generic = generic

    def wants(self, change: Change) -> bool:
        return change == self._student_id or self._generic.wants(change)

    def _charts(self) -> list[Patch]:
        student = self._state.student(self._student_id) or StudentState(self._student_id)
        return [{"id": panels_id(self._student_id), "html": student_panels(student, window_seconds=self._window)}]

    def snapshot(self) -> list[Patch]:
        return [*self._charts(), *self._generic.snapshot()]

    def patches(self, changed: set[Change]) -> list[Patch]:
        return [*(self._charts() if self._student_id in changed else []), *self._generic.patches(changed)]


_Feed = OverviewView | MetricView | _StudentFeed
_NOT_KEYED_BY_STUDENT: Final = (
    "{name} is not keyed by student_id: its windows are shown only to readers of every student."
)


def _numbers(versions: list[MetricVersion]) -> list[int]:
    return [version.description.version for version in versions]


def _is_key(text: str) -> bool:
    """``text`` spells a key as the metric pages do: ids joined by dots."""
    return all(is_id(part) for part in text.split("."))


def _metric_stream(description: MetricDescription, after: str | None) -> str:
    params = {"metric": description.name, "version": str(description.version), **({"after": after} if after else {})}
    return f"/dashboard/stream?{urlencode(params)}"


@dataclass(frozen=True, slots=True)
class _Refused:
    """Why a metric's page or stream is not served: a page says it, a stream's answer too."""

    status: int
    title: str
    message: str

    @property
    def _headers(self) -> dict[str, str]:
        return {**_HEADERS, "Retry-After": "2"} if self.status == 503 else _HEADERS

    def page(self) -> web.Response:
        text = message_page(self.title, self.message)
        return web.Response(status=self.status, text=text, content_type="text/html", headers=self._headers)

    def text(self) -> web.Response:
        return web.Response(status=self.status, text=self.message, headers=self._headers)


_UNAVAILABLE: Final = _Refused(503, "Unavailable", "The metric registry cannot be read now (NATS away?); retry shortly.")


def _sign_in(next_path: str, message: str = "This dashboard needs a read token.") -> web.Response:
    """401 with the sign-in form, which comes back to ``next_path``."""
    page = login_page(next_path, message)
    return web.Response(status=401, text=page, content_type="text/html", headers={**_HEADERS, **_CHALLENGE})


def _cookie_token(request: web.Request) -> str | None:
    kept = request.cookies.get(COOKIE)
    if not kept:
        return None
    try:
        return base64.urlsafe_b64decode(kept.encode("ascii")).decode("utf-8", "surrogateescape")
    except (ValueError, binascii.Error):  # not a cookie this module set
        return None


def _is_dashboard_path(path: str) -> bool:
    """A page of this dashboard: where the sign-in form may send the browser back to (never
    another site, whatever the form was given)."""
    return path == "/dashboard" or path.startswith(("/dashboard/", "/dashboard?"))


DASHBOARD: Final = web.AppKey("dashboard", Dashboard)


def add_dashboard(
    app: web.Application,
    reader: MetricsReader,
    *,
    guard: ReadGuard | None = None,
    window_seconds: int,
    grace_seconds: int,
    streams: int = 100,
    students: int = STUDENTS,
    metric_keys: int = METRIC_KEYS,
    retry_after: int = 2,
) -> Dashboard:
    """Add the dashboard's routes to ``app``; it follows the bucket while ``app`` runs. Its
    pages and stream are behind ``guard`` (None: open to anyone); ``streams`` and ``students``
    are its bounds (see :class:`Dashboard`)."""
    dashboard = Dashboard(
        reader, guard=guard, window_seconds=window_seconds, grace_seconds=grace_seconds,
        streams=streams, students=students, metric_keys=metric_keys, retry_after=retry_after,
    )
    app[DASHBOARD] = dashboard
    app.cleanup_ctx.append(dashboard.lifespan)
    app.router.add_get("/", dashboard.home)
    app.router.add_get("/dashboard", dashboard.overview)
    app.router.add_get("/dashboard/students/{student_id}", dashboard.student)
    app.router.add_get("/dashboard/metrics", dashboard.metrics)
    app.router.add_get("/dashboard/metrics/{metric}", dashboard.metric)
    app.router.add_get("/dashboard/stream", dashboard.stream)
    app.router.add_post("/dashboard/login", dashboard.login)
    app.router.add_static("/dashboard/static", STATIC_DIR)
    return dashboard
