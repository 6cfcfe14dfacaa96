"""``python -m benchmarks``: the benchmark suite, printed as a table and written to BENCHMARKS.md.

The stages (see :mod:`benchmarks.suite`) need a checkout of the repository, run from its root:
they reuse the test oracle and the worker harness of :mod:`testkit`.

A default run takes about eight minutes on a 2-core machine and rewrites the generated block of
``BENCHMARKS.md``; ``--quick`` runs every stage on toy sizes in about a minute and writes nothing
unless ``--output`` is given (it is the CI smoke mode: its figures mean little).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import code_version, format_table, machine, render, write_report
from benchmarks.scale import DEFAULT, QUICK
from benchmarks.suite import STAGES, SuiteResult, run_suite

__all__ = ["add_arguments", "main", "run_bench"]

_COMMAND = "python -m benchmarks"
_REPO = Path(__file__).resolve().parents[1]
_REPORT = _REPO / "BENCHMARKS.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="toy sizes, about a minute (CI smoke mode)")
    parser.add_argument(
        "--output", type=Path, default=None,
        help="where to write the report (default: BENCHMARKS.md; with --quick: nowhere)",
    )
    parser.add_argument(
        "--only", default=None, metavar="STAGE[,STAGE]",
        help=f"run only these stages: {', '.join(STAGES)}",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=_COMMAND, description="The benchmark suite; writes BENCHMARKS.md.")
    add_arguments(parser)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_bench(parser.parse_args(argv))


def run_bench(args: argparse.Namespace) -> int:
    stages = STAGES if args.only is None else tuple(s.strip() for s in args.only.split(","))
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        print(f"error: unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
        return 2
    scale = QUICK if args.quick else DEFAULT
    output = args.output if args.output is not None or args.quick else _REPORT
    # The suite prints its own progress; faust apps running in this process would drown it.
    logging.getLogger().setLevel(logging.WARNING)
    started, clock = datetime.now(UTC), time.monotonic()

    async def suite() -> SuiteResult:
        # SIGTERM cancels the run, so every stage's servers and workers are stopped on the way out.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run_suite(scale, stages=stages, progress=lambda line: print(line, flush=True))

    try:
        result = asyncio.run(suite())
    except asyncio.CancelledError:
        print("interrupted: every server and worker of the run was stopped")
        return 128 + signal.SIGTERM
    seconds = time.monotonic() - clock
    print()
    print(format_table(result.rows, result.targets))
    if output is not None:
        command = " ".join(
            [_COMMAND, *(["--quick"] if args.quick else []), *([f"--only {args.only}"] if args.only else [])]
        )
        block = render(
            result.rows, result.targets, command=command, code=code_version(_REPO), started=started, seconds=seconds,
            host=machine(),
        )
        write_report(output, block)
        print(f"\nwritten to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
