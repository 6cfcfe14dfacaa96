"""``python -m app nats``: the embedded nats-server with JetStream, in the foreground."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Final

from app.logs import say
from app.settings import Settings
from app.signals import until_signalled
from bridges.server import NatsServer

__all__ = ["DESCRIPTION", "HELP", "LOCAL_NATS_URL", "NATS_FROM_SETTINGS", "add_arguments", "run"]

HELP: Final = "run the embedded nats-server (JetStream) in the foreground"

#: where ``python -m app nats`` listens and where processes look when NATS_URL is unset
LOCAL_NATS_URL: Final = "nats://127.0.0.1:4222"

#: how ``worker``, ``web`` and ``simulate`` find NATS, for their ``--help``
NATS_FROM_SETTINGS: Final = (
    f"NATS: the servers of NATS_URL, or {LOCAL_NATS_URL} when it is unset (where `python -m app nats` "
    "listens); this command starts no nats-server of its own."
)

DESCRIPTION: Final = (
    "Run a nats-server with JetStream on 127.0.0.1 (--port, default 4222), its store in "
    f"DATA_DIR/nats. The worker, web and simulate commands find it at {LOCAL_NATS_URL} when NATS_URL "
    "is unset. NATS_URL is not read by this command."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=4222, help="client port (0: any free port)")
    parser.add_argument("--store", type=Path, default=None, help="JetStream store (default DATA_DIR/nats)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_serve_nats(args.port, args.store or settings.data_dir / "nats"))


async def _serve_nats(port: int, store: Path) -> int:
    async with NatsServer(store, port=port) as server:
        say(f"nats-server with JetStream at {server.url} (store {store}); Ctrl-C stops it", logger=__name__)
        await until_signalled()
    return 0
