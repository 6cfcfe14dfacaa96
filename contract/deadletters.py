"""Dead letters: what cannot be counted, where it goes, and the words of its ``Reason`` header.

    deadletter.invalid            events NATS ingest refused: not JSON, or against the event
                                  contract (HTTP ingest answers 422 instead and stores nothing)
    deadletter.invalid.<metric>   events a metric could not read (a key or time field it needs)
    deadletter.late.<metric>      events that arrived at or after their window's end + grace
    deadletter.error.<metric>     events a metric's code raised on, and windows whose result could
                                  not be computed

Each carries the payload as it came (a failed window's: its key, window and error) and a
``Reason`` header. The reason is written once, here: :func:`refusal_reason` for what ingest
refuses, and :func:`header_text` for how any reason (which may quote untrusted input) is made to
fit a header, so NATS ingest, the workers and the test driver (``agents.windowed.driver``) say
the same thing about the same event.
"""

from __future__ import annotations

from typing import Final

from contract.events import InvalidEvents, MalformedJSON

__all__ = ["MAX_HEADER_TEXT", "REASON_HEADER", "header_text", "refusal_reason"]

#: the header of every dead letter that says why it is one
REASON_HEADER: Final = "Reason"
#: characters of a header value at most: a reason naming many fields is cut there
MAX_HEADER_TEXT: Final = 1000


def refusal_reason(error: MalformedJSON | InvalidEvents) -> str:
    """Why ingest refuses an event, on one line: ``field: rule; field: rule``, every problem."""
    if isinstance(error, MalformedJSON):
        return f"(body): {error}"
    return "; ".join(f"{problem.field or '(event)'}: {problem.message}" for problem in error.errors)


def header_text(text: str) -> str:
    """``text`` as a header value: one line of ASCII (others escaped), at most
    :data:`MAX_HEADER_TEXT` characters."""
    cleaned = text.encode("ascii", "backslashreplace").decode().replace("\r", " ").replace("\n", " ")
    return cleaned[:MAX_HEADER_TEXT]
