"""In-memory stand-ins for what :class:`~bridges.transport.publisher.PipelinedPublisher` uses of
nats-py.

The publisher calls three methods of ``nats.aio.client.Client``: ``new_inbox()``,
``subscribe(subject, cb=..., pending_msgs_limit=...)`` and
``publish(subject, payload, reply=..., headers=...)``. :class:`FakeNats` records what is
published and lets a test play the server: :meth:`FakeNats.reply` hands a reply to the
subscribed callback, as nats-py would. The reply bodies below are byte-for-byte what
nats-server 2.15 sends.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from testkit.subjects import subject_matches

__all__ = [
    "FakeMonotonic",
    "FakeMsg",
    "FakeNats",
    "NO_RESPONDERS",
    "Sent",
    "ack_body",
    "error_body",
]

NO_RESPONDERS = {"Status": "503"}


def ack_body(stream: str, seq: int) -> bytes:
    return b'{"stream":"%s","seq":%d}' % (stream.encode(), seq)


def error_body(code: int, err_code: int, description: str, stream: str = "S") -> bytes:
    error = json.dumps({"code": code, "err_code": err_code, "description": description}, separators=(",", ":"))
    return b'{"error":%s,"stream":"%s","seq":0}' % (error.encode(), stream.encode())


@dataclass(frozen=True)
class Sent:
    subject: str
    payload: bytes
    reply: str
    headers: dict[str, str]

    @property
    def msg_id(self) -> str:
        return self.headers["Nats-Msg-Id"]


@dataclass(frozen=True)
class FakeMsg:
    """The part of ``nats.aio.msg.Msg`` a reply callback reads."""

    subject: str
    data: bytes
    headers: dict[str, str] | None = None


@dataclass
class FakeSubscription:
    subject: str
    pending_msgs_limit: int
    unsubscribed: bool = False

    async def unsubscribe(self) -> None:
        self.unsubscribed = True


@dataclass
class FakeNats:
    inbox: str = "_INBOX.fake"
    sent: list[Sent] = field(default_factory=list)
    subscription: FakeSubscription | None = None
    _callback: Callable[[FakeMsg], Awaitable[None]] | None = None

    def new_inbox(self) -> str:
        return self.inbox

    async def subscribe(
        self, subject: str, *, cb: Callable[[FakeMsg], Awaitable[None]], pending_msgs_limit: int
    ) -> FakeSubscription:
        assert self.subscription is None, "the publisher subscribes once"
        self.subscription = FakeSubscription(subject, pending_msgs_limit)
        self._callback = cb
        return self.subscription

    async def publish(
        self, subject: str, payload: bytes = b"", reply: str = "", headers: dict[str, str] | None = None
    ) -> None:
        self.sent.append(Sent(subject, payload, reply, dict(headers or {})))

    async def reply(self, to: Sent, data: bytes, headers: dict[str, str] | None = None) -> None:
        """Answer a published message the way the server does: on its reply subject."""
        await self.reply_on(to.reply, data, headers)

    async def reply_on(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        assert self.subscription is not None and self._callback is not None
        assert not self.subscription.unsubscribed
        # The server can only route the reply if the publisher listens where it asked for it.
        assert subject_matches(self.subscription.subject, subject), (self.subscription.subject, subject)
        await self._callback(FakeMsg(subject, data, headers))

    def sent_to(self, subject: str) -> list[Sent]:
        return [sent for sent in self.sent if sent.subject == subject]


class FakeMonotonic:
    """Stands in for the ``time`` module inside the publisher: ``monotonic()`` moves when told."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
