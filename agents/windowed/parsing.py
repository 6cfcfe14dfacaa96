"""``loads``: what ``json.loads`` makes of a record of the events topic, in about 0.6 of its time.

Every event a worker counts is parsed here (a batch record holds hundreds), so the parser is on
the per-event path: ``json.loads`` takes about 1.2 us per event of a batch, pydantic_core's
``from_json`` (jiter, already a dependency through pydantic) about 0.7 us.

The two do not agree on everything, and the dead letters must not change: ``json.loads`` reads
lone surrogate escapes (``"\\ud800"``), a UTF-8 byte-order mark, UTF-16 and UTF-32, which jiter
refuses, and their error messages differ ("Expecting value: line 1 column 1 (char 0)" is what a
dead letter's reason quotes). So jiter parses first and ``json.loads`` decides whatever jiter
refuses: the value or the error is then ``json.loads``'s own. Where jiter succeeds, it gives
what ``json.loads`` gives (numbers of any size, NaN and the infinities, duplicate keys, floats
to the last bit; ``tests/unit/agents/windowed/test_parsing.py`` holds it to that).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import from_json

__all__ = ["loads"]


def loads(raw: bytes) -> Any:
    """``json.loads(raw)``: the same value, or the same exception."""
    try:
        # Keys repeat in every event of a batch; caching only them measured fastest.
        return from_json(raw, cache_strings="keys")
    except ValueError:
        return json.loads(raw)
