"""``python -m app worker <agent>``: one worker process of an agent."""

from __future__ import annotations

import argparse
from typing import Final

from app.cli.nats import LOCAL_NATS_URL, NATS_FROM_SETTINGS
from app.settings import Settings
from app.worker import agent_names, run_worker

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]

HELP: Final = "run one worker process of an agent"
DESCRIPTION: Final = (
    "Run one worker process of a metric agent; several processes of one agent share its "
    "partitions. " + NATS_FROM_SETTINGS
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "agent",
        help=f"the agent to run: one of {', '.join(agent_names())}, or the path of a module file",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    return run_worker(args.agent, settings, settings.nats_urls or (LOCAL_NATS_URL,))
