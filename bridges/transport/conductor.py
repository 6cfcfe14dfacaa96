"""faust's Conductor, with undecodable messages logged by position and skipped.

faust acks a message whose key or value cannot be deserialized and then *throws* the error into
every stream reading it, which crashes the agent (its supervisor restarts it) and logs a
traceback that does not say which message it was. On this transport such a message is logged
once with its topic, partition and offset and skipped; the agent keeps its state and goes on.

This uses the hooks faust documents for the purpose (``on_key_decode_error`` /
``on_value_decode_error``), installed on each channel the conductor registers — unless the
channel's class overrides them itself, in which case the user's handling stands.
"""

from __future__ import annotations

import logging
import types
from typing import Any

from faust.channels import Channel
from faust.transport.conductor import Conductor as FaustConductor
from faust.types import Message, TopicT

__all__ = ["Conductor"]

log = logging.getLogger(__name__)


async def _skip_undecodable_key(self: Channel, exc: Exception, message: Message) -> None:
    _log_skip("key", exc, message)
    await self.on_decode_error(exc, message)


async def _skip_undecodable_value(self: Channel, exc: Exception, message: Message) -> None:
    _log_skip("value", exc, message)
    await self.on_decode_error(exc, message)


def _log_skip(part: str, exc: Exception, message: Message) -> None:
    log.error(
        "skipping message %s[%d] offset %d: its %s cannot be decoded: %s",
        message.topic, message.partition, message.offset, part, exc,
    )


class Conductor(FaustConductor):
    def add(self, topic: TopicT) -> None:
        cls: Any = type(topic)
        if cls.on_key_decode_error is Channel.on_key_decode_error:
            topic.on_key_decode_error = types.MethodType(_skip_undecodable_key, topic)  # type: ignore[method-assign]
        if cls.on_value_decode_error is Channel.on_value_decode_error:
            topic.on_value_decode_error = types.MethodType(_skip_undecodable_value, topic)  # type: ignore[method-assign]
        super().add(topic)
