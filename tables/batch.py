"""Many events as one record: how ingest writes events and the windowed agents read them.

A record of the events topic holds either one event (a JSON object, what plain producers write)
or a **batch**::

    {"events": [<event>, <event>, ...], "arrived_at": [<epoch seconds>, ...]}

``arrived_at`` gives each event's arrival (when the platform first stored it) and is left out
when every event arrived when the record itself was stored (HTTP ingest: the record's stored time
is their arrival). Batching is what lets a worker pay faust's per-record cost, the broker's
per-message cost and one JSON parse once per batch instead of once per event; batch boundaries
mean nothing else (finals, duplicates and dead letters are the same however events are batched).

Encoding takes each event's canonical JSON bytes as they are (no re-encoding); decoding parses
the record once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

__all__ = ["BATCH_PREFIX", "decode_record", "encode_batch"]

#: how every batch record begins (a single event's canonical JSON never does: its keys are sorted)
BATCH_PREFIX: Final = b'{"events":['


def encode_batch(events: Sequence[bytes], arrivals: Sequence[float] | None = None) -> bytes:
    """One batch record of ``events`` (each an event's JSON bytes) and their ``arrivals``, if given."""
    if arrivals is not None and len(arrivals) != len(events):
        raise ValueError(f"{len(arrivals)} arrival times for {len(events)} events")
    body = BATCH_PREFIX + b",".join(events) + b"]"
    if arrivals is None:
        return body + b"}"
    return body + b',"arrived_at":' + json.dumps([float(a) for a in arrivals]).encode() + b"}"


def decode_record(raw: bytes, stored_at: float) -> list[tuple[Any, float]]:
    """The events of a record and each one's arrival: ``[(event, arrived_at), ...]``.

    A record that is not a batch is one event, arrived at ``stored_at`` (the record's timestamp).
    Raises ``ValueError`` when the record is not JSON, or is a batch of the wrong shape.
    """
    document = json.loads(raw)
    if not raw.startswith(BATCH_PREFIX):
        return [(document, stored_at)]
    events = document.get("events")
    arrivals = document.get("arrived_at")
    if not isinstance(events, list) or (arrivals is not None and not _times(arrivals, len(events))):
        raise ValueError('a batch must be {"events": [...], "arrived_at": [one number per event]}')
    if arrivals is None:
        return [(event, stored_at) for event in events]
    return list(zip(events, arrivals))


def _times(arrivals: Any, count: int) -> bool:
    return (
        isinstance(arrivals, list)
        and len(arrivals) == count
        and all(type(a) in (int, float) for a in arrivals)
    )
