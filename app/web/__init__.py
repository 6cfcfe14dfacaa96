"""The web process behind ``python -m app web``: HTTP ingest, the query API, health and OpenAPI,
and the NATS ingest consumer, on one NATS connection (the dashboard's pages are added to it).

- ``routes``       the route table: every HTTP route with its handler and OpenAPI operation,
                   from which both the aiohttp router and the OpenAPI paths are built
- ``handlers``     the handlers the routes point at (ingest, query, health, readiness, OpenAPI)
- ``process``      the aiohttp application, and serving it until a signal, then draining
- ``services``     the NATS side: one connection shared by the event sink, NATS ingest and the reader
- ``ingest``       ``POST /v1/events``; ``event_rules`` the event contract as NATS ingest needs it
- ``query``        ``GET /v1/metrics/...``
- ``models``       the bodies (pydantic) and the helpers every handler answers with
- ``openapi``      the OpenAPI document at ``GET /openapi.json``: the routes' paths and the schemas
- ``draining``     letting in-flight requests finish on shutdown, uploads included
- ``doors``        the HTTP door's bounds: header and body deadlines, ingest concurrency
"""

from app.web.process import make_web_app, run_web, serve_web
from app.web.services import ServicesState, WebOptions, WebServices

__all__ = ["ServicesState", "WebOptions", "WebServices", "make_web_app", "run_web", "serve_web"]
