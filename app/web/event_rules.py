"""The event contract as the NATS ingest path needs it: a validator that never raises.

:class:`~bridges.public.nats_ingest.NatsIngest` takes its validator as an argument; the web
process gives it :func:`judge_payload`, which turns the contract's exceptions into a
:class:`~bridges.public.nats_ingest.Rejection` whose reason names every offending field
(:func:`contract.deadletters.refusal_reason`), in the same words HTTP ingest answers with.
"""

from __future__ import annotations

from bridges.public.nats_ingest import Rejection
from contract.deadletters import refusal_reason
from contract.events import Event, InvalidEvents, MalformedJSON, validate_event

__all__ = ["judge_payload"]


def judge_payload(raw: bytes, now: float) -> Event | Rejection:
    """One event's JSON -> the event, or why it is not one (``now``: the server's clock)."""
    try:
        return validate_event(raw, now=now)
    except (MalformedJSON, InvalidEvents) as exc:
        return Rejection(refusal_reason(exc))
