"""Whether a window's final value is on ``results.>`` already: a replay publishes it at most once.

A final value is written to KV first, then published (see :mod:`bridges.public.fenced_writes`).
A worker that dies between the two leaves a final in KV that nobody published, so whoever closes
the window again (its successor replaying from the last flush) must publish the value it finds
there. It must not publish it a second time when the first worker did get to it: the results
stream's ``Nats-Msg-Id`` dedupe lasts a duplicate window only, and a replay may come hours later.

So a found final is looked up on its subject first: the first worker published it moments after
storing it, once its window had ended, and later windows of the same student come after it. The
first :data:`SCAN` messages on the student's result subject stored since the window's end are read
in one direct get (no consumer) and searched for the publish's ``Nats-Msg-Id``. Found: nothing
to do. Not found, or the lookup failed: publish (a duplicate within the duplicate window is still
dropped by the stream; a final is never left unpublished to save a repeat).

What remains possible: the first worker, frozen between its KV write and its publish for longer
than the duplicate window, resumed after its successor published (its publish is not fenced: it
repeats what KV holds). The results stream's retention bounds the lookup too: a replay after
``RESULTS_RETENTION`` publishes again, which the subscriber of a stream that forgot the first
copy cannot tell from a first publish.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Final

from bridges.direct_get import DirectGet
from bridges.transport.envelope import HDR_MSG_ID
from tables.errors import StreamsError

__all__ = ["PublishedResults", "SCAN"]

log = logging.getLogger(__name__)

#: messages on the subject since the window's end searched for the first publish: the windows of
#: one student that close around the same time (one per game for ``outcomes``), with room to spare
SCAN: Final = 64


class PublishedResults:
    """Looks finals up on the results stream, through a started :class:`DirectGet` of it."""

    def __init__(self, reader: DirectGet) -> None:
        self._reader = reader

    async def holds(self, subject: str, msg_id: str, final: bytes) -> bool:
        """Whether ``subject`` holds the publish ``msg_id`` of the final value ``final``.

        False when it cannot tell (a document without a window end, the lookup failing): the
        caller then publishes, and the stream's dedupe drops a repeat within its window.
        """
        end = _window_end(final)
        if end is None:
            return False
        try:
            found = await self._reader.first_since(subject, end, SCAN)
        except StreamsError as exc:
            log.debug("looking up %s on %s failed (%s): publishing it", msg_id, subject, exc)
            return False
        return any(msg.headers.get(HDR_MSG_ID) == msg_id for msg in found)


def _window_end(final: bytes) -> float | None:
    try:
        return datetime.fromisoformat(json.loads(final)["window"]["end"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return None
