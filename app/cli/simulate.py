"""``python -m app simulate``: a simulated class sending events, its flags and the options they make.

Targets come from flags, with the deployment's settings as defaults: ``--url`` (default
``http://127.0.0.1:$PORT``), ``--nats-url`` (default ``NATS_URL``). The ingest token is read from
``INGEST_TOKEN`` only: a flag would show it to anyone listing processes.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Final

from app.cli.nats import LOCAL_NATS_URL, NATS_FROM_SETTINGS
from app.settings import Settings
from app.simulator import SimulatorOptions, run_simulator
from app.simulator.classroom import Faults

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "add_class_arguments", "late_by_default", "run", "simulator_options"]

HELP: Final = "a simulated class sending events to HTTP or NATS ingest"
DESCRIPTION: Final = (
    "Simulate a class of students sending events to HTTP ingest (--url) or NATS ingest (--ingest). "
    "For NATS ingest, --nats-url wins over NATS_URL; "
    + NATS_FROM_SETTINGS.removeprefix("NATS: ")
)


def late_by_default(settings: Settings) -> float:
    """Two windows plus grace and a margin ago: that window has closed for certain."""
    return float(2 * (settings.window_seconds + settings.grace_seconds) + 5)


def _probability(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a probability between 0 and 1")
    return value


def _positive(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{raw!r} is not > 0")
    return value


def _count(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not >= 1")
    return value


def add_class_arguments(parser: argparse.ArgumentParser) -> None:
    """``--students`` and ``--rate``, which the demo shares."""
    parser.add_argument("--students", type=_count, default=12, help="students in the class (default 12)")
    parser.add_argument("--rate", type=_positive, default=10.0, help="events per second, whole class (default 10)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_class_arguments(parser)
    parser.add_argument("--url", default=None, help="HTTP ingest base URL (default http://127.0.0.1:$PORT)")
    parser.add_argument("--nats-url", default=None, help="NATS for --ingest nats|both (default $NATS_URL)")
    parser.add_argument(
        "--ingest", choices=("http", "nats", "both"), default="http",
        help="http (default); nats: publish to events.<type>.<student_id>; both: valid events "
        "over HTTP, repeats and invalid events over NATS (where invalid ones are dead-lettered)",
    )
    parser.add_argument("--duplicates", type=_probability, default=0.0, help="share of events sent twice")
    parser.add_argument("--late", type=_probability, default=0.0, help="share of events followed by a late one")
    parser.add_argument("--invalid", type=_probability, default=0.0, help="share of events followed by an invalid one")
    parser.add_argument(
        "--late-by", type=_positive, default=None,
        help="seconds in the past of late events (default 2 x (window + grace) + 5)",
    )
    parser.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run's choices")
    parser.add_argument("--report-every", type=_positive, default=5.0, help="seconds between reports (default 5)")
    parser.add_argument("--json", action="store_true", help="reports as JSON lines")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(run_simulator(simulator_options(args, settings, LOCAL_NATS_URL)))


def simulator_options(args: argparse.Namespace, settings: Settings, default_nats_url: str) -> SimulatorOptions:
    nats_urls = (args.nats_url,) if args.nats_url else settings.nats_urls or (default_nats_url,)
    return SimulatorOptions(
        url=args.url or f"http://127.0.0.1:{settings.port}",
        nats=settings.connection(nats_urls, name="learning-streams-simulator"),
        token=settings.ingest_token,
        ingest=args.ingest,
        students=args.students,
        rate=args.rate,
        faults=Faults(
            duplicates=args.duplicates, late=args.late, invalid=args.invalid,
            late_by=args.late_by or late_by_default(settings),
        ),
        duration=args.duration,
        seed=args.seed,
        report_every=args.report_every,
        report_json=args.json,
    )
