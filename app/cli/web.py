"""``python -m app web``: HTTP ingest, the query API, the dashboard and the NATS ingest consumer."""

from __future__ import annotations

import argparse
import asyncio
from typing import Final

from app.cli.nats import LOCAL_NATS_URL, NATS_FROM_SETTINGS
from app.settings import Settings
from app.web import run_web

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]

HELP: Final = "HTTP ingest and query API, and the NATS ingest consumer (PORT)"
DESCRIPTION: Final = (
    "Serve HTTP ingest, the query API and the dashboard on HOST:PORT, and consume NATS ingest. "
    + NATS_FROM_SETTINGS
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The web process takes its settings from the environment only."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(run_web(settings, settings.nats_urls or (LOCAL_NATS_URL,)))
