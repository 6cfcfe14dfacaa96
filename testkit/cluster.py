"""A three-node NATS cluster with JetStream on loopback, for tests that need replication.

Each node is a :class:`~bridges.server.NatsServer` with a configuration file written here: its
server name, the cluster's name, a route port picked by :func:`~bridges.server.free_port` (a
cluster route cannot take port 0) and routes to the other two. Client ports are picked by the
servers themselves (port 0) and read back. Every node is stopped when the context ends, pass
or fail.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import nats
from nats.errors import Error as NatsError

from bridges.server import NatsServer, free_port
from testkit.workers import poll_until

__all__ = ["NatsCluster"]


class NatsCluster:
    """``size`` nats-servers routed to each other; ``urls`` lists their client URLs."""

    def __init__(self, base_dir: Path, *, size: int = 3, name: str = "learning") -> None:
        self.base_dir = base_dir
        self.name = name
        route_ports = [free_port() for _ in range(size)]
        self.nodes: list[NatsServer] = []
        for i, port in enumerate(route_ports):
            node_dir = base_dir / f"n{i + 1}"
            node_dir.mkdir(parents=True, exist_ok=True)
            config = node_dir / "node.conf"
            routes = ", ".join(f'"nats-route://127.0.0.1:{p}"' for j, p in enumerate(route_ports) if j != i)
            config.write_text(
                f'server_name: "n{i + 1}"\n'
                f"cluster {{\n"
                f'  name: "{name}"\n'
                f'  listen: "127.0.0.1:{port}"\n'
                f"  routes: [{routes}]\n"
                f"}}\n"
            )
            self.nodes.append(NatsServer(node_dir, name=f"n{i + 1}", config_file=config))

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def nats_url(self) -> str:
        """Every node, comma-separated, as ``NATS_URL`` takes them."""
        return ",".join(self.urls)

    async def start(self) -> NatsCluster:
        await asyncio.gather(*(node.start() for node in self.nodes))
        await self.wait_jetstream(self.nodes)
        return self

    async def wait_jetstream(self, nodes: Sequence[NatsServer], *, timeout: float = 60.0) -> None:
        """Until JetStream answers through each of ``nodes`` (a meta leader has been elected)."""

        async def answers(node: NatsServer) -> bool:
            try:
                client = await nats.connect(node.url, connect_timeout=1, allow_reconnect=False)
            except (NatsError, OSError, TimeoutError):
                return False
            try:
                await client.jetstream().account_info()
                return True
            except (NatsError, TimeoutError):
                return False
            finally:
                await client.close()

        for node in nodes:
            await poll_until(functools.partial(answers, node), timeout=timeout, interval=0.2,
                             what=f"JetStream through {node.name}")

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes))

    async def __aenter__(self) -> NatsCluster:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
