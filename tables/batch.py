"""Many events as one record: how ingest writes events and the windowed agents read them.

A record of the events topic holds either one event (a JSON object, what plain producers write)
or a **batch**::

    {"events": [<event>, <event>, ...], "arrived_at": [<epoch seconds>, ...], "watermark": <epoch seconds>}

``arrived_at`` gives each event's arrival (when the platform first stored it) and is left out
when every event arrived when the record itself was stored (HTTP ingest: the record's stored time
is their arrival). ``watermark``, when present, is a promise from the writer: every record after
this one in its partition arrived at or after that time (see ``tables.watermark``). It travels
with the events, so a worker working off a backlog, or replaying one, moves its windows'
watermark as it goes and closes them on the way, instead of holding them all until it has
caught up. Batching is what lets a worker pay faust's per-record cost, the broker's
per-message cost and one JSON parse once per batch instead of once per event; batch boundaries
mean nothing else (finals, duplicates and dead letters are the same however events are batched).

Encoding takes each event's canonical JSON bytes as they are (no re-encoding); decoding parses
the record once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

__all__ = ["BATCH_PREFIX", "Record", "decode_record", "encode_batch"]

#: how every batch record begins (a single event's canonical JSON never does: its keys are sorted)
BATCH_PREFIX: Final = b'{"events":['


class Record(NamedTuple):
    """What one record holds: its events with each one's arrival, and the writer's promise."""

    events: list[tuple[Any, float]]
    #: every later record of the partition arrived at or after this (epoch seconds), or None
    watermark: float | None


def encode_batch(
    events: Sequence[bytes], arrivals: Sequence[float] | None = None, *, watermark: float | None = None
) -> bytes:
    """One batch record of ``events`` (each an event's JSON bytes), their ``arrivals`` and the
    writer's ``watermark``, each if given."""
    if arrivals is not None and len(arrivals) != len(events):
        raise ValueError(f"{len(arrivals)} arrival times for {len(events)} events")
    parts = [BATCH_PREFIX, b",".join(events), b"]"]
    if arrivals is not None:
        parts += [b',"arrived_at":', json.dumps([float(a) for a in arrivals]).encode()]
    if watermark is not None:
        parts += [b',"watermark":', repr(float(watermark)).encode()]
    parts.append(b"}")
    return b"".join(parts)


def decode_record(raw: bytes, stored_at: float, *, loads: Callable[[bytes], Any] = json.loads) -> Record:
    """The events of a record, each with its arrival, and the record's watermark.

    A record that is not a batch is one event, arrived at ``stored_at`` (the record's timestamp).
    Raises ``ValueError`` when the record is not JSON, or is a batch of the wrong shape.
    ``loads`` parses the JSON: ``json.loads`` or a faster parser that returns and raises what it
    would (the windowed agents pass one; this package imports no parser library).
    """
    document = loads(raw)
    if not raw.startswith(BATCH_PREFIX):
        return Record([(document, stored_at)], None)
    events = document.get("events")
    arrivals = document.get("arrived_at")
    watermark = document.get("watermark")
    if (
        not isinstance(events, list)
        or (arrivals is not None and not _times(arrivals, len(events)))
        or (watermark is not None and type(watermark) not in (int, float))
    ):
        raise ValueError(
            'a batch must be {"events": [...], "arrived_at": [one number per event], "watermark": a number}'
        )
    if arrivals is None:
        return Record([(event, stored_at) for event in events], watermark)
    return Record(list(zip(events, arrivals, strict=True)), watermark)


def _times(arrivals: Any, count: int) -> bool:
    return (
        isinstance(arrivals, list)
        and len(arrivals) == count
        and all(type(a) in (int, float) for a in arrivals)
    )
