"""The ``nats://`` transport for faust, registered in the ``faust.transports`` entry point.

    app = faust.App("myapp", broker="nats://127.0.0.1:4222?session_timeout=6")

The consumer and producer of one app share a
:class:`~bridges.transport.session.TransportSession`: one NATS connection, the topic registry,
the pipelined publisher and the changelog fences.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any, ClassVar

from faust.transport import base
from faust.types import AppT
from faust.types.transports import ConductorT, ConsumerT, ProducerT
from yarl import URL

from bridges.connection import ConnectionSettings
from bridges.transport.conductor import Conductor
from bridges.transport.consumer import Consumer
from bridges.transport.options import TransportOptions
from bridges.transport.producer import Producer
from bridges.transport.session import TransportSession

__all__ = ["Transport"]


class Transport(base.Transport):
    """faust transport over NATS JetStream."""

    Consumer: ClassVar[type[ConsumerT]] = Consumer
    Producer: ClassVar[type[ProducerT]] = Producer
    Conductor: ClassVar[type[ConductorT]] = Conductor

    default_port = 4222
    driver_version = f"nats-py={version('nats-py')}"

    def __init__(
        self, url: list[URL], app: AppT, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        super().__init__(url, app, loop=loop)
        conf: Any = app.conf
        options = TransportOptions.from_urls(url)
        settings = ConnectionSettings.from_urls(
            [_with_default_port(u, self.default_port) for u in url],
            credentials=conf.broker_credentials,
            ssl_context=conf.ssl_context,
            name=f"faust-{conf.id}",
        )
        self.session = TransportSession(settings, options, conf.id)


def _with_default_port(url: URL, port: int) -> str:
    text = str(url)
    return text if url.explicit_port else str(url.with_port(port))
