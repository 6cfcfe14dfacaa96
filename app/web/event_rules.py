"""The event contract as the NATS ingest path needs it: a validator that never raises.

:class:`~bridges.public.nats_ingest.NatsIngest` takes its validator as an argument; the web
process gives it :func:`judge_payload`, which turns the contract's exceptions into a
:class:`~bridges.public.nats_ingest.Rejection` whose reason names every offending field, in the
same words HTTP ingest answers with.
"""

from __future__ import annotations

from bridges.public.nats_ingest import Rejection
from contract.events import Event, FieldError, InvalidEvents, MalformedJSON, validate_event

__all__ = ["describe_errors", "judge_payload"]


def describe_errors(errors: list[FieldError]) -> str:
    """``field: message; field: message`` — one line, every problem of one event."""
    return "; ".join(f"{error.field or '(event)'}: {error.message}" for error in errors)


def judge_payload(raw: bytes, now: float) -> Event | Rejection:
    """One event's JSON -> the event, or why it is not one (``now``: the server's clock)."""
    try:
        return validate_event(raw, now=now)
    except MalformedJSON as exc:
        return Rejection(f"(body): {exc}")
    except InvalidEvents as exc:
        return Rejection(describe_errors(exc.errors))
