"""Renders ``deploy/nats-accounts.conf``: a NATS server configuration with one user per role and
least-privilege permissions, for a deployment with a given prefix, partition count and agents.

    python deploy/nats_permissions.py > deploy/nats-accounts.conf      # the defaults
    python deploy/nats_permissions.py --partitions 16 --agents engagement outcomes progression hints

``--agents`` defaults to the metric modules of ``agents/``; a metric run from a file elsewhere
needs its name added, and a metric's later version its series (``engagement_v2``: docs/api.md,
versions). Retiring a version (``python -m app retire``) purges streams and deletes a group's
state: an operator's credentials do that, none of these roles.

Why generated: JetStream permissions name streams whole (``$JS.API.STREAM.INFO.FAUST_events_3``;
a wildcard cannot stand for part of a token), and the project makes one stream per topic
partition, so the lists depend on the partition count and on the agents. Passwords are read by
nats-server from its environment (``$NATS_INGEST_PASSWORD`` ...), never written here.

Roles (each also gets only its own reply inboxes, ``_INBOX_<role>.>``; set NATS_INBOX_PREFIX):

- ``producer`` publishes events to ``events.<type>.<student_id>`` and nothing else;
- ``ingest`` (the web process) pulls the INGEST stream, writes the events topic, dead-letters
  invalid events and reads the metrics bucket and the metric registry for the query API; for ``/metrics`` it reads the
  offsets bucket (every group's lag) and lists the streams (their sizes);
- ``worker`` (the metric workers) reads the events topic, keeps its groups' offsets, leases and
  changelogs (purging from them what closed windows leave), and writes its metrics' descriptions
  (the metric registry), results, result subjects and dead letters - it cannot
  write events, nor read the raw INGEST stream or the dead letters (it reads only the INGEST
  stream's info: its oldest message's time is what the arrival clock needs);
- ``reader`` (dashboards, adaptive services) reads the metrics bucket, the metric registry, the RESULTS stream (and
  acknowledges what its durable consumers deliver) and ``results.>``, and nothing else.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["ROLES", "render"]

ROLES = ("producer", "ingest", "worker", "reader")
_API = "$JS.API"
#: the KV bucket of metric descriptions (contract.registry.REGISTRY_BUCKET)
_REGISTRY = "metric_registry"


def _stream_admin(stream: str, *, create: bool = True, update: bool = True) -> list[str]:
    """Creating (idempotently) and inspecting a stream and, for the roles that own its settings,
    updating its limits in place (retention settings changed and a process restarted)."""
    out = [f"{_API}.STREAM.INFO.{stream}"]
    if create:
        out.append(f"{_API}.STREAM.CREATE.{stream}")
    if update:
        out.append(f"{_API}.STREAM.UPDATE.{stream}")
    return out


def _stream_reader(stream: str) -> list[str]:
    """Ephemeral or durable consumers of ``stream``: create, inspect, pull, delete, direct gets."""
    return [
        f"{_API}.CONSUMER.CREATE.{stream}", f"{_API}.CONSUMER.CREATE.{stream}.>",
        f"{_API}.CONSUMER.INFO.{stream}.*", f"{_API}.CONSUMER.DELETE.{stream}.*",
        f"{_API}.CONSUMER.MSG.NEXT.{stream}.*", f"{_API}.STREAM.MSG.GET.{stream}",
        f"{_API}.DIRECT.GET.{stream}", f"{_API}.DIRECT.GET.{stream}.>",
    ]


def _bucket(
    bucket: str, keys: Iterable[str], *, create: bool = True, update: bool = True, watch: bool = False
) -> list[str]:
    """A KV bucket: open (and create, and bound), read and write ``keys`` (subjects under it)."""
    stream = f"KV_{bucket}"
    out = [*_stream_admin(stream, create=create, update=update)]
    out += [f"{_API}.DIRECT.GET.{stream}.>", f"{_API}.STREAM.MSG.GET.{stream}"]
    out += [f"$KV.{bucket}.{key}" for key in keys]
    if watch:
        out += [f"{_API}.CONSUMER.CREATE.{stream}", f"{_API}.CONSUMER.CREATE.{stream}.>",
                f"{_API}.CONSUMER.INFO.{stream}.*", f"{_API}.CONSUMER.DELETE.{stream}.*"]
    return out


def metric_modules() -> list[str]:
    """The metric modules of ``agents/`` by their files, as ``agents.metric_modules`` lists them
    (deploy imports no package of the project: it runs as a script)."""
    folder = Path(__file__).resolve().parent.parent / "agents"
    return sorted(path.stem for path in folder.glob("*.py") if not path.stem.startswith("_"))


def _registry_reader() -> list[str]:
    """The metric registry, read with direct gets (the query API, the client): no consumer."""
    return _bucket(_REGISTRY, [], update=False) + [f"{_API}.DIRECT.GET.KV_{_REGISTRY}"]


def permissions(role: str, prefix: str, partitions: int, agents: Sequence[str]) -> tuple[list[str], list[str]]:
    """(publish allow, subscribe allow) of ``role``."""
    upper = prefix.upper()
    inbox = f"_INBOX_{role}.>"
    events = [f"{upper}_events_{p}" for p in range(partitions)]
    if role == "producer":
        return ["events.*.*"], [inbox]
    if role == "ingest":
        pub = _bucket(f"{prefix}_topics", ["events"])
        for p, stream in enumerate(events):
            pub += [*_stream_admin(stream), f"{prefix}.events.{p}"]
        pub += _stream_admin(f"{upper}_INGEST") + _stream_admin(f"{upper}_DEADLETTER")
        pub += [
            f"{_API}.CONSUMER.CREATE.{upper}_INGEST.web-ingest", f"{_API}.CONSUMER.CREATE.{upper}_INGEST.web-ingest.>",
            f"{_API}.CONSUMER.MSG.NEXT.{upper}_INGEST.web-ingest", f"$JS.ACK.{upper}_INGEST.web-ingest.>",
            "deadletter.invalid",
        ]
        # The query API reads the bucket; the workers, which write it, own its limits.
        pub += _bucket("metrics", [], update=False) + _stream_reader("KV_metrics")
        pub += _registry_reader()
        # /metrics: every group's lag (a watch of the offsets bucket) and the storage of every
        # stream and of the account (stream names and sizes, no message).
        pub += _bucket(f"{prefix}_offsets", [], create=False, update=False, watch=True)
        pub += [f"$JS.FC.KV_{prefix}_offsets.>", f"{_API}.INFO", f"{_API}.STREAM.LIST"]
        return sorted(set(pub)), [inbox]
    if role == "worker":
        pub = [f"{_API}.INFO"]
        topics = ["events"]
        offsets: list[str] = []
        groups: list[str] = []
        for stream in events:
            pub += _stream_admin(stream) + _stream_reader(stream)
        for agent in agents:
            changelog, assignor = f"{agent}-{agent}-windows-changelog", f"{agent}-__assignor-__leader"
            topics += [changelog, assignor]
            offsets.append(f"{agent}.>")
            groups.append(f"{agent}.>")
            pub += _stream_admin(f"{upper}_{assignor}_0") + _stream_reader(f"{upper}_{assignor}_0")
            pub.append(f"{prefix}.{assignor}.0")
            for p in range(partitions):
                stream = f"{upper}_{changelog}_{p}"
                pub += _stream_admin(stream) + _stream_reader(stream) + [f"{prefix}.{changelog}.{p}.>"]
                pub.append(f"{_API}.STREAM.PURGE.{stream}")  # closed windows leave (tables/compaction.py)
            # its description, at start, and how far its version has come through the stored events
            pub += [f"$KV.{_REGISTRY}.{agent}", f"$KV.{_REGISTRY}.backfill.{agent}"]
            pub += [f"results.{agent}.*", f"deadletter.*.{agent}", f"$KV.metrics.{agent}.>",
                    f"{_API}.DIRECT.GET.KV_metrics.$KV.metrics.{agent}.>"]
        pub += _bucket(f"{prefix}_topics", topics)
        # watch: /metrics reads its group's lag from the offsets bucket
        pub += _bucket(f"{prefix}_offsets", offsets, watch=True) + [f"$JS.FC.KV_{prefix}_offsets.>"]
        pub += _bucket(f"{prefix}_groups", groups, watch=True)
        pub += _stream_admin("KV_metrics") + _stream_admin(f"{upper}_RESULTS") + _stream_admin(f"{upper}_DEADLETTER")
        pub += _stream_admin(f"KV_{_REGISTRY}") + _registry_reader()
        pub.append(f"{_API}.STREAM.INFO.{upper}_INGEST")  # the arrival clock (bridges/public/arrival_clock.py)
        return sorted(set(pub)), [inbox]
    if role == "reader":
        # The project's clients create the metrics bucket and the results stream when they are
        # missing (a reader may start first); creating an existing one changes nothing.
        pub = [f"{_API}.INFO", *_stream_admin("KV_metrics", update=False), *_stream_reader("KV_metrics")]
        pub += _registry_reader()
        pub += [*_stream_admin(f"{upper}_RESULTS", update=False), *_stream_reader(f"{upper}_RESULTS"),
                f"$JS.FC.{upper}_RESULTS.>", "$JS.FC.KV_metrics.>",
                # acks of a durable consumer of results, which keeps a service's place (docs/client.md)
                f"$JS.ACK.{upper}_RESULTS.>"]
        return sorted(set(pub)), [inbox, "results.>"]
    raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")


def _list(items: list[str], indent: str) -> str:
    return "[\n" + "".join(f'{indent}  "{item}"\n' for item in items) + f"{indent}]"


def render(prefix: str = "faust", partitions: int = 8, agents: Sequence[str] | None = None) -> str:
    agents = metric_modules() if agents is None else agents
    agents = sorted(agents)
    lines = [
        "# Least-privilege users for learning-streams - generated by deploy/nats_permissions.py",
        f"#   --prefix {prefix} --partitions {partitions} --agents {' '.join(agents)}",
        "# Passwords come from nats-server's environment; every user reads only its own replies",
        "# (the processes run with NATS_INBOX_PREFIX=_INBOX_<role>). See docs/operations.md.",
        "accounts {",
        "  LEARNING {",
        "    jetstream: enabled",
        "    users: [",
    ]
    for role in ROLES:
        publish, subscribe = permissions(role, prefix, partitions, agents)
        indent = " " * 10
        lines += [
            "      {",
            f"        user: {role}",
            f"        password: $NATS_{role.upper()}_PASSWORD",
            "        permissions: {",
            f"          publish: {{ allow: {_list(publish, indent)} }}",
            f"          subscribe: {{ allow: {_list(subscribe, indent)} }}",
            "        }",
            "      }",
        ]
    lines += ["    ]", "  }", "}", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", default="faust", help="NATS_PREFIX of the deployment")
    parser.add_argument("--partitions", type=int, default=8, help="PARTITIONS of the deployment")
    parser.add_argument("--agents", nargs="+", default=None, help="metric names (default: the modules of agents/)")
    args = parser.parse_args(argv)
    print(render(args.prefix, args.partitions, args.agents), end="")


if __name__ == "__main__":
    main()
