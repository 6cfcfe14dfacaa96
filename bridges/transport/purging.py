"""Removing records from a changelog partition: JetStream purges with a subject filter.

A compacting topic's key has its own subject (:mod:`bridges.naming`), so the records of one key
below an offset are one purge request (``filter`` the key's subject, ``seq`` the bound), and
every record below an offset is one request filtered on the data subjects, which leaves the
partition's fence alone. When to purge what is decided by the table (:mod:`tables.compaction`);
this only carries it out, and never raises: a purge that fails is reported back and tried again.
:class:`ChangelogPurges` is what the wiring hands a windowed agent (``AgentContext.purger``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

from nats.errors import Error as NatsError

from bridges.transport.session import TransportSession
from tables.compaction import ChangelogPurger, Purge
from tables.errors import StreamsError

__all__ = ["ChangelogPurges", "changelog_records", "purge_changelog"]

log = logging.getLogger(__name__)

#: purge requests in flight per partition (each is one round trip; the server handles ~15k/s)
_IN_FLIGHT: Final = 64
_FAILURES: Final = (NatsError, StreamsError, TimeoutError, OSError)


async def purge_changelog(
    session: TransportSession, topic: str, partition: int, purges: Sequence[Purge]
) -> list[Purge]:
    """Carry out ``purges`` on ``topic``'s partition; returns those that failed."""
    naming = session.naming
    stream = naming.stream(topic, partition)
    slots = asyncio.Semaphore(_IN_FLIGHT)

    async def purge(item: Purge) -> None:
        if item.key is None:
            subject = naming.data_filter(topic, partition, True)
        else:
            subject = naming.key_subject(topic, partition, item.key.encode())
        async with slots:
            await session.js.purge_stream(stream, seq=item.below, subject=subject)

    outcomes = await asyncio.gather(*(purge(item) for item in purges), return_exceptions=True)
    failed = []
    for item, outcome in zip(purges, outcomes, strict=True):
        if isinstance(outcome, _FAILURES):
            failed.append(item)
        elif isinstance(outcome, BaseException):
            raise outcome  # cancellation, or a bug: not a purge that may be tried again
    if failed:
        error = next(o for o in outcomes if isinstance(o, BaseException))
        log.warning("%s[%d]: %d of %d changelog purges failed (tried again later): %s",
                    topic, partition, len(failed), len(purges), error)
    return failed


class ChangelogPurges(ChangelogPurger):
    """The changelog purges of one transport session (see the module docstring)."""

    def __init__(self, session: TransportSession) -> None:
        self._session = session

    async def purge_changelog(self, topic: str, partition: int, purges: Sequence[Purge]) -> list[Purge]:
        return await purge_changelog(self._session, topic, partition, purges)

    async def changelog_records(self, topic: str, partition: int) -> int | None:
        return await changelog_records(self._session, topic, partition)


async def changelog_records(session: TransportSession, topic: str, partition: int) -> int | None:
    """How many messages ``topic``'s partition stream holds (its fence included); None when
    that cannot be read now."""
    try:
        info = await session.js.stream_info(session.naming.stream(topic, partition))
    except _FAILURES as exc:
        log.warning("%s[%d]: cannot count the changelog's messages: %s", topic, partition, exc)
        return None
    return int(info.state.messages)
