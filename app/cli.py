"""``python -m app <command>``: the thin CLI the README and the Procfile call."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from app.bench import add_arguments as add_bench_arguments
from app.worker import agent_names
from app.settings import VARIABLES, Settings
from app.signals import until_signalled
from app.simulator_cli import add_class_arguments, add_simulate_arguments, simulator_options
from tables.errors import StreamsError

__all__ = ["LOCAL_NATS_URL", "main"]

#: where ``python -m app nats`` listens and where processes look when NATS_URL is unset
LOCAL_NATS_URL = "nats://127.0.0.1:4222"


def _parser() -> argparse.ArgumentParser:
    env_help = "\n".join(f"  {name:<24} {meaning} (default {default})" for name, (default, meaning) in VARIABLES.items())
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="faust agents on NATS JetStream computing windowed learning metrics.",
        epilog=f"settings (environment variables):\n{env_help}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    worker = commands.add_parser("worker", help="run one worker process of an agent")
    worker.add_argument(
        "agent",
        help=f"the agent to run: one of {', '.join(agent_names())}, or the path of a module file",
    )
    nats = commands.add_parser("nats", help="run the embedded nats-server (JetStream) in the foreground")
    nats.add_argument("--port", type=int, default=4222, help="client port (0: any free port)")
    nats.add_argument("--store", type=Path, default=None, help="JetStream store (default DATA_DIR/nats)")
    demo = commands.add_parser(
        "demo", help="the main job: NATS, the metric workers, the web process and dashboard, a simulated class"
    )
    add_class_arguments(demo)
    demo.add_argument("--status-every", type=float, default=5.0, help="seconds between status lines (default 5)")
    add_simulate_arguments(
        commands.add_parser("simulate", help="a simulated class sending events to HTTP or NATS ingest")
    )
    commands.add_parser("web", help="HTTP ingest and query API, and the NATS ingest consumer (PORT)")
    add_bench_arguments(commands.add_parser("bench", help="run the benchmark suite and write BENCHMARKS.md"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except StreamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "worker":
            from app.worker import run_worker

            return run_worker(args.agent, settings, settings.nats_urls or (LOCAL_NATS_URL,))
        if args.command == "nats":
            return asyncio.run(_serve_nats(args.port, args.store or settings.data_dir / "nats"))
        if args.command == "demo":
            from app.demo import run_demo

            return asyncio.run(run_demo(settings, students=args.students, rate=args.rate, status_every=args.status_every))
        if args.command == "simulate":
            from app.simulator import run_simulator

            return asyncio.run(run_simulator(simulator_options(args, settings, LOCAL_NATS_URL)))
        if args.command == "web":
            from app.web import run_web

            return asyncio.run(run_web(settings, settings.nats_urls or (LOCAL_NATS_URL,)))
        if args.command == "bench":
            from app.bench import run_bench

            return run_bench(args)
    except StreamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


async def _serve_nats(port: int, store: Path) -> int:
    from bridges.server import NatsServer

    async with NatsServer(store, port=port) as server:
        print(f"nats-server with JetStream at {server.url} (store {store}); Ctrl-C stops it", flush=True)
        await until_signalled()
    return 0

