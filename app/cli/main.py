"""The parser of ``python -m app``, built from the command modules, and the run of one command.

Exit status: 0 done; 1 something outside broke (NATS unreachable, say); 2 a setting or an
argument the command cannot work with (said in one line, before anything waits for NATS where
the command can tell); 130 Ctrl-C while waiting for NATS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Final

from app.cli import demo, nats, retire, simulate, web, worker
from app.logs import configure_logging, say
from app.settings import Settings, help_lines
from tables.errors import ConfigError, StreamsError

__all__ = ["COMMANDS", "main"]

#: command name -> its module, in the order ``--help`` lists them
COMMANDS: Final[dict[str, ModuleType]] = {
    "worker": worker,
    "nats": nats,
    "demo": demo,
    "simulate": simulate,
    "web": web,
    "retire": retire,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="faust agents on NATS JetStream computing windowed learning metrics.",
        epilog=f"settings (environment variables):\n{help_lines()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name, module in COMMANDS.items():
        module.add_arguments(commands.add_parser(name, help=module.HELP, description=module.DESCRIPTION))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except StreamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        return int(COMMANDS[args.command].run(args, settings))
    except ConfigError as exc:
        say(f"error: {exc}", logger="app", level="error", file=sys.stderr)
        return 2
    except StreamsError as exc:
        say(f"error: {exc}", logger="app", level="error", file=sys.stderr)
        return 1
