"""``python -m app demo``: the main job, everything at once with a simulated class."""

from __future__ import annotations

import argparse
import asyncio
from typing import Final

from app.cli.simulate import add_class_arguments
from app.demo import run_demo
from app.settings import Settings

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]

HELP: Final = "the main job: NATS, the metric workers, the web process and dashboard, a simulated class"
DESCRIPTION: Final = (
    "Start a nats-server of its own (any free port, store in DATA_DIR/nats; NATS_URL is not used), "
    "the three metric workers, the web process with its dashboard on PORT, and a simulated class. "
    "Ctrl-C stops everything."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_class_arguments(parser)
    parser.add_argument("--status-every", type=float, default=5.0, help="seconds between status lines (default 5)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(run_demo(settings, students=args.students, rate=args.rate, status_every=args.status_every))
