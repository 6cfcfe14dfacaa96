"""The faust App factory: one app (one consumer group, its own topics and tables) per agent."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import socket
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import faust
from prometheus_client import CollectorRegistry

import agents
from agents.windowed import AgentContext, MetricBuild
from app.settings import Settings
from bridges.public.arrival_clock import ArrivalClock
from bridges.public.window_results import WindowResults
from bridges.transport.consumer import Consumer
from bridges.transport.purging import ChangelogPurges
from contract.names import EVENTS_TOPIC
from tables.errors import ConfigError

__all__ = ["agent_names", "app_name", "load_agent", "make_app"]


def agent_names() -> list[str]:
    """Agent modules available to ``python -m app worker <agent>``.

    A metric is a top-level module of ``agents`` (``agents/<name>.py``); what the metrics share
    lives in subpackages (``agents/windowed/``), which are not agents.
    """
    return agents.metric_modules()


def load_agent(name: str) -> ModuleType:
    """An agent module by name (``agents/<name>.py``) or by the path of a ``.py`` file.

    A path lets a data engineer run a metric under development without adding it to the
    package; the app is then named after the file (``hints.py`` -> app and group ``hints``).
    """
    if name.endswith(".py"):
        module = _module_from_file(Path(name))
    elif name in agent_names():
        module = importlib.import_module(f"agents.{name}")
    else:
        close = difflib.get_close_matches(name, agent_names(), n=1)
        raise ConfigError(
            "agent", name,
            f"unknown agent; known: {', '.join(agent_names())}, or a path to a .py file"
            + (f" (did you mean {close[0]}?)" if close else ""),
            kind="Argument",
        )
    if not callable(getattr(module, "build", None)):
        raise ConfigError("agent", name, "its module defines no build(app, context)", kind="Argument")
    return module


def _module_from_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ConfigError("agent", str(path), "is not a file", kind="Argument")
    spec = importlib.util.spec_from_file_location(f"agents_extra.{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def app_name(agent: str, module: ModuleType | None = None, settings: Settings | None = None) -> str:
    """The app (and consumer group) name of an agent given by name or by file path.

    A windowed metric's (its ``build`` a :class:`~agents.windowed.MetricBuild`) is the series of
    the version it defines, so each version of a metric is a group of its own; any other agent's
    is its module's name, or the file's (``hints.py`` -> ``hints``).
    """
    build = getattr(module, "build", None)
    if isinstance(build, MetricBuild) and settings is not None:
        return build.series(settings.window_seconds, settings.grace_seconds)
    return Path(agent).stem if agent.endswith(".py") else agent


#: The agent's queue in records, shared by every partition (faust's default is 4,096). Each record
#: is a batch of up to 1,000 events, so this still keeps the agent busy while the fetch loop refills
#: it, and it bounds what a worker holds in memory. It also bounds the wait of the partitions a
#: worker keeps through a rebalance: a gained partition's backlog arrives at once, and the kept
#: ones queue behind as much of it as fits here (BENCHMARKS.md, rebalances).
AGENT_QUEUE_RECORDS: Final = 64


def make_app(
    name: str,
    settings: Settings,
    nats_urls: tuple[str, ...],
    *,
    module: ModuleType | None = None,
    registry: CollectorRegistry | None = None,
) -> faust.App:
    """A faust app for agent ``name`` (or a module file) on the ``nats://`` transport.

    ``module`` is the agent's, when the caller loaded it already (:func:`load_agent`); the
    agent's metrics go to ``registry`` (the worker's ``/metrics``), if given.
    """
    module = module or load_agent(name)
    name = app_name(name, module, settings)
    workers_dir = settings.data_dir / "workers"
    workers_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = faust.App(
        name,
        broker=settings.broker_url(nats_urls),
        broker_credentials=settings.credentials(),
        store="tracked-memory://",
        topic_partitions=settings.partitions,
        datadir=str(workers_dir / name),
        # Several workers of one agent run side by side: no web server to collide on a port,
        # and a member URL unique per process (faust's assignor tells members apart by it).
        web_enabled=False,
        canonical_url=f"http://{socket.gethostname()}-{os.getpid()}.worker.invalid:6066",
        broker_commit_interval=1.0,
        stream_buffer_maxsize=AGENT_QUEUE_RECORDS,
    )
    events = app.topic(EVENTS_TOPIC, value_serializer="raw", key_serializer="raw")
    transport: Any = app.transport
    streams = settings.public_streams()
    results = WindowResults(transport.session, streams, provisional=settings.update_seconds > 0)
    module.build(
        app,
        AgentContext(
            events=events,
            window_seconds=settings.window_seconds,
            grace_seconds=settings.grace_seconds,
            results=results,
            register_state=transport_consumer(app).register_state_owner,
            clock=ArrivalClock(transport.session, naming=transport.session.naming, ingest_stream=streams.ingest),
            update_seconds=settings.update_seconds,
            registry=registry,
            purger=ChangelogPurges(transport.session),
            describe=results.announce,
        ),
    )
    return app


def transport_consumer(app: faust.App) -> Consumer:
    """The app's consumer, which must be the nats:// transport's (it takes state owners)."""
    consumer = app.consumer
    if not isinstance(consumer, Consumer):
        raise ConfigError("broker", str(app.conf.broker[0]), "windowed agents need the nats:// transport")
    return consumer
