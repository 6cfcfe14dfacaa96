"""``python -m app retire <metric> --version <n>``: remove a metric's old version for good."""

from __future__ import annotations

import argparse
import asyncio
from typing import Final

from agents.windowed.state_table import changelog_topic
from app.cli.nats import LOCAL_NATS_URL, NATS_FROM_SETTINGS
from app.logs import say
from app.settings import Settings
from bridges.connection import connect, disconnect
from bridges.public.retirement import retire_version
from contract.names import metric_series, require_metric

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]

HELP: Final = "remove a metric's old version: its keys, published results and group"
DESCRIPTION: Final = (
    "Remove version --version of a metric once a newer version is complete (GET /v1/metrics says so) "
    "and the old version's workers are stopped: its registry entries, its KV keys, its published "
    "results, its consumer group's offsets and its changelogs. Refused, saying why, while the version "
    "is the metric's only complete one or its workers still run; its dead letters stay until "
    "DEADLETTER_RETENTION ends. Running it again finishes a retirement that stopped half-way. "
    + NATS_FROM_SETTINGS
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("metric", help="the metric's name (as GET /v1/metrics lists it)")
    parser.add_argument("--version", type=int, required=True, help="the version to remove")


def run(args: argparse.Namespace, settings: Settings) -> int:
    metric = require_metric(args.metric)
    series = metric_series(metric, args.version)  # refuses a version < 1 before waiting for NATS
    return asyncio.run(_retire(metric, args.version, series, settings))


async def _retire(metric: str, version: int, series: str, settings: Settings) -> int:
    client = await connect(settings.connection(settings.nats_urls or (LOCAL_NATS_URL,), name="learning-streams-retire"))
    try:
        retired = await retire_version(
            client, settings.public_streams(update_limits=False), metric, version,
            changelogs=[changelog_topic(series, metric)],
        )
    finally:
        await disconnect(client)
    say(
        f"retired {metric} version {version} ({retired.series}): registry entries, KV keys, published results "
        f"and group removed; changelogs deleted: {', '.join(retired.topics) or 'none left'}",
        logger=__name__,
    )
    return 0
