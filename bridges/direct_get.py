"""Consumer-free reads of a stream: JetStream's direct gets, batched.

A direct get (a stream with ``allow_direct``) is answered from the store by a server holding the
stream, without a consumer: a read creates nothing on the server and leaves nothing behind,
however many are made. Three forms of ``$JS.API.DIRECT.GET.<stream>`` are used (the batched ones
need nats-server 2.11 or later; nats-py 2.16 has no helper for them, so they are sent by hand,
with the fields of the server's ``JSApiMsgGetRequest``):

- :meth:`DirectGet.last_per_subject`, ``multi_last``: the last message of every subject that
  matches one of the filters, each request a snapshot. The server looks a literal subject up in
  its subject index, so a request costs what it asks for, not what the stream holds. A request
  answers at most 1024 subjects (more: status 413), so filters go in chunks with a few requests in
  flight, and a chunk refused as too large is split in two.
- :meth:`DirectGet.last`, ``last_by_subj``: the last message of one filter (wildcards allowed).
- :meth:`DirectGet.walk`, ``next_by_subj`` with ``batch``: every message matching a filter, in
  stream order, a page per request; :meth:`DirectGet.first_since` the first few stored at or
  after a time (``start_time``), in one request. Pages are not one snapshot: a subject written again between
  two pages is seen twice, at both sequences.

A batched answer is its messages, then a status: ``204 EOB`` with ``Nats-Num-Pending`` (what the
answer left out; a page is bounded in bytes too, and is continued from the next sequence), or
``404`` when nothing matched. Every answer comes to one wildcard subscription, told apart by the
last token of its reply subject.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tables.errors import BrokenError, ClosedError

__all__ = ["DirectGet", "StoredMsg"]

log = logging.getLogger(__name__)

_STATUS: Final = "Status"
#: the server's cap on the subjects one ``multi_last`` request answers (``maxAllowedResponses``)
MULTI_LAST_MAX: Final = 1024


@dataclass(frozen=True, slots=True)
class StoredMsg:
    """One stored message, as a direct get answers it."""

    subject: str
    seq: int
    #: when the stream stored it (the server's clock), epoch seconds
    time: float
    headers: Mapping[str, str]
    data: bytes


@dataclass(eq=False)
class _Answer:
    messages: list[Msg] = field(default_factory=list)
    #: the status that ended the answer, with its headers; a single get ends at its message
    end: asyncio.Future[Mapping[str, str]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    single: bool = False


class DirectGet:
    """Direct gets of one stream over a connected client (not owned); start before use.

    Args:
        client: a connected nats-py client.
        stream: the stream's name; it must allow direct gets.
        timeout: seconds one request (a chunk, a page) may take to be answered in full.
        in_flight: requests of one :meth:`last_per_subject` call sent at once.
        chunk: filters per ``multi_last`` request; a literal subject answers at most one message,
            so up to :data:`MULTI_LAST_MAX` of them fit.
        page: messages per :meth:`walk` request.
        max_bytes: the bytes of one answer, past which the server ends it early (the rest is
            asked for next); None: the server's own budget (its ``max_pending``, 64 MiB).
    """

    def __init__(
        self,
        client: Client,
        stream: str,
        *,
        timeout: float = 10.0,
        in_flight: int = 4,
        chunk: int = 256,
        page: int = 1000,
        max_bytes: int | None = None,
    ) -> None:
        self._client = client
        self._stream = stream
        self._api = f"$JS.API.DIRECT.GET.{stream}"
        self._timeout = timeout
        self._in_flight = in_flight
        self._chunk = min(chunk, MULTI_LAST_MAX)
        self._page = page
        self._budget: dict[str, int] = {} if max_bytes is None else {"max_bytes": max_bytes}
        self._inbox = ""
        self._sub: Subscription | None = None
        self._answers: dict[str, _Answer] = {}
        self._tokens = itertools.count()
        self._closed = False

    async def start(self) -> DirectGet:
        if self._closed or self._sub is not None:
            raise ClosedError("a direct reader can be started once")
        self._inbox = self._client.new_inbox()
        self._sub = await self._client.subscribe(f"{self._inbox}.*", cb=self._on_msg)
        return self

    async def close(self) -> None:
        """Idempotent; requests still waiting fail with :class:`ClosedError`."""
        self._closed = True
        for answer in self._answers.values():
            if not answer.end.done():
                answer.end.set_exception(ClosedError(f"the direct reader of {self._stream} is closed"))
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:
                log.debug("unsubscribing the direct reader of %s failed", self._stream, exc_info=True)

    # -- reads ----------------------------------------------------------------------------

    async def last_per_subject(self, filters: Sequence[str]) -> list[StoredMsg]:
        """The last message of each subject matching one of ``filters``, in no set order."""
        chunks = [filters[i : i + self._chunk] for i in range(0, len(filters), self._chunk)]
        gate = asyncio.Semaphore(self._in_flight)

        async def read(chunk: Sequence[str]) -> list[StoredMsg]:
            async with gate:
                return await self._multi_last(chunk)

        tasks = [asyncio.create_task(read(chunk)) for chunk in chunks]
        try:
            answers = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return [msg for answer in answers for msg in answer]

    async def last(self, subject_filter: str) -> StoredMsg | None:
        """The last message matching ``subject_filter`` (the highest sequence), or None."""
        messages, status = await self._request({"last_by_subj": subject_filter}, single=True)
        if status.get(_STATUS) == "404":
            return None
        self._check(status, "last_by_subj")
        return _stored(messages[0])

    async def walk(self, subject_filter: str) -> list[StoredMsg]:
        """Every message matching ``subject_filter``, by sequence, read a page at a time."""
        found: list[StoredMsg] = []
        body: dict[str, Any] = {"next_by_subj": subject_filter, "batch": self._page, **self._budget}
        while True:
            messages, status = await self._request(body)
            if status.get(_STATUS) == "404":  # nothing (more) at or after the sequence asked
                return found
            self._check(status, "next_by_subj")
            found += (_stored(msg) for msg in messages)
            if not messages or _int(status, "Nats-Num-Pending") == 0:
                return found
            body = {**body, "seq": found[-1].seq + 1}

    async def first_since(self, subject_filter: str, since: float, count: int) -> list[StoredMsg]:
        """Up to ``count`` messages matching ``subject_filter`` stored at or after ``since``
        (epoch seconds, the server's clock), by sequence: one request, one page."""
        start = datetime.fromtimestamp(since, UTC).isoformat().replace("+00:00", "Z")
        body = {"next_by_subj": subject_filter, "start_time": start, "batch": count, **self._budget}
        messages, status = await self._request(body)
        if status.get(_STATUS) == "404":
            return []
        self._check(status, "next_by_subj since")
        return [_stored(msg) for msg in messages]

    async def _multi_last(self, filters: Sequence[str]) -> list[StoredMsg]:
        found: list[StoredMsg] = []
        body: dict[str, Any] = {"multi_last": list(filters), **self._budget}
        while True:
            messages, status = await self._request(body)
            code = status.get(_STATUS)
            if code == "404":
                return found
            if code == "413" and not found:
                if len(filters) == 1:
                    raise BrokenError(
                        f"reading {self._stream}: {filters[0]} matches more than the {MULTI_LAST_MAX} subjects "
                        "one request answers"
                    )
                half = len(filters) // 2
                return await self._multi_last(filters[:half]) + await self._multi_last(filters[half:])
            self._check(status, "multi_last")
            found += (_stored(msg) for msg in messages)
            if not messages or _int(status, "Nats-Num-Pending") == 0:
                return found
            # The answer stopped at the server's byte budget: the rest of the same snapshot.
            body = {**body, "seq": found[-1].seq + 1, "up_to_seq": _int(status, "Nats-UpTo-Sequence")}

    # -- one request ----------------------------------------------------------------------

    async def _request(self, body: Mapping[str, Any], *, single: bool = False) -> tuple[list[Msg], Mapping[str, str]]:
        if self._closed or self._sub is None:
            raise ClosedError(f"the direct reader of {self._stream} is not open")
        if not self._client.is_connected:
            # Fail fast: a request made while reconnecting would wait out its whole timeout.
            raise BrokenError("NATS is not connected")
        token = str(next(self._tokens))
        answer = self._answers[token] = _Answer(single=single)
        try:
            await self._client.publish(self._api, json.dumps(body).encode(), reply=f"{self._inbox}.{token}")
            status = await asyncio.wait_for(answer.end, self._timeout)
        except TimeoutError:
            raise BrokenError(
                f"reading {self._stream}: no complete answer within {self._timeout}s "
                f"({len(answer.messages)} messages so far)"
            ) from None
        except (ClosedError, BrokenError):
            raise
        except Exception as exc:  # noqa: BLE001 - nats-py's connection errors
            raise BrokenError(f"reading {self._stream}: {type(exc).__name__}") from None
        finally:
            del self._answers[token]
        return answer.messages, status

    async def _on_msg(self, msg: Msg) -> None:
        answer = self._answers.get(msg.subject[len(self._inbox) + 1 :])
        if answer is None or answer.end.done():
            return  # the answer of a request that timed out or failed
        headers = msg.headers or {}
        if _STATUS in headers:
            answer.end.set_result(headers)
            return
        answer.messages.append(msg)
        if answer.single:
            answer.end.set_result(headers)

    def _check(self, status: Mapping[str, str], form: str) -> None:
        code = status.get(_STATUS)
        if code is None or code == "204":
            return
        if code == "503":
            raise BrokenError(f"reading {self._stream}: no server answers direct gets (does it allow them?)")
        # nats-py keys the description with an enum member equal to "Description", not hashed as it
        description = next((value for key, value in status.items() if key == "Description"), "")
        raise BrokenError(f"reading {self._stream} ({form}): status {code} {description}".rstrip())


def _stored(msg: Msg) -> StoredMsg:
    headers = msg.headers or {}
    return StoredMsg(
        subject=headers["Nats-Subject"],
        seq=int(headers["Nats-Sequence"]),
        time=datetime.fromisoformat(headers["Nats-Time-Stamp"]).timestamp(),
        headers=headers,
        data=msg.data,
    )


def _int(headers: Mapping[str, str], name: str) -> int:
    try:
        return int(headers.get(name, 0))
    except ValueError:
        return 0
