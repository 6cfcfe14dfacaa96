"""The bounds of the web process's HTTP door (issue 14): how long a client may take and how many
uploads are served at once, so slow or idle clients cannot hold its memory.

- **headers**: a connection must complete its request's headers within ``HTTP_IDLE_SECONDS`` of
  opening, or of the previous answer on a kept-alive connection; else it is closed. This is
  aiohttp's keep-alive timeout, which it also arms when a connection opens and which closes a
  connection still waiting for a complete request (``RequestHandler._process_keepalive``);
  nothing else of aiohttp's bounds the wait for headers.
- **body**: an upload must arrive within ``HTTP_BODY_SECONDS`` (408, and the connection is
  closed; :mod:`app.web.ingest`). After an upload is refused unread (413, 503), aiohttp reads and
  drops the rest for its lingering time, so a client still sending can read the answer; that
  time is ``HTTP_BODY_SECONDS`` too (aiohttp's default is 10 s), so no upload holds a connection
  longer than the body deadline.
- **concurrency**: at most ``INGEST_CONCURRENCY`` ingest requests are served at once, each
  holding at most 1 MiB of body; one more is answered 503 with ``Retry-After`` without reading
  its body. The dashboard's streams have their own limit (``DASHBOARD_STREAMS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.settings import Settings

__all__ = ["Doors"]


@dataclass(frozen=True)
class Doors:
    """The door's bounds; from :class:`Settings` in production (the defaults are the settings')."""

    idle_seconds: float = 15.0
    body_seconds: float = 30.0
    ingest_concurrency: int = 16

    @classmethod
    def from_settings(cls, settings: Settings) -> Doors:
        return cls(settings.http_idle_seconds, settings.http_body_seconds, settings.ingest_concurrency)

    def handler_args(self) -> dict[str, Any]:
        """aiohttp's connection handler options (``AppRunner(**...)``): the header deadline, and
        the lingering after a refused upload."""
        return {"keepalive_timeout": self.idle_seconds, "lingering_time": self.body_seconds}
