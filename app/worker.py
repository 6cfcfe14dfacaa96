"""Running one worker process of an agent (``python -m app worker <agent>``)."""

from __future__ import annotations

import faust

from app.factory import make_app
from app.settings import Settings

__all__ = ["run_worker"]


def run_worker(agent: str, settings: Settings, nats_urls: tuple[str, ...]) -> int:
    """Run until SIGTERM/SIGINT: faust's Worker drains, commits and leaves the group."""
    app = make_app(agent, settings, nats_urls)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        # Output goes where the process's stdout goes; faust would turn prints into log warnings.
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.execute_from_commandline()
    return 0
