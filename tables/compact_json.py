"""Compact JSON encoders built once, for the per-event and per-window paths.

``json.dumps(value, separators=(",", ":"))`` builds a new encoder on every call, and even a
prebuilt ``JSONEncoder(...).encode`` builds a new C encoder object on every call: for the small
documents of the hot paths (an event's ``data``, a window's result, a changelog value) that setup
is most of the cost (``{"seconds": 30}``: 1.06 us through ``encode``, 0.43 us through the C
encoder made once). :func:`compact_encoder` makes the C encoder once and calls it directly,
producing exactly what ``JSONEncoder.encode`` with the same options produces.

One difference, on purpose: no circular-reference check. Everything encoded here was parsed
from JSON or built by this project from such values, so it cannot hold a cycle; a cycle would
end in ``RecursionError`` instead of ``ValueError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

__all__ = ["compact_encoder"]


def _refuse(value: object) -> Any:
    # JSONEncoder.default's message, so callers see the same TypeError either way.
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def compact_encoder(*, sort_keys: bool = False, ensure_ascii: bool = True, allow_nan: bool = True) -> Callable[[Any], str]:
    """An encoder equal to ``json.JSONEncoder(separators=(",", ":"), ...).encode`` with these options."""
    if c_make_encoder is None:  # not CPython: the pure-Python encoder, same output
        return json.JSONEncoder(
            separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=ensure_ascii, allow_nan=allow_nan
        ).encode
    strings = encode_basestring_ascii if ensure_ascii else encode_basestring
    # (markers, default, encoder, indent, key_separator, item_separator, sort_keys, skipkeys,
    # allow_nan), as json.encoder.JSONEncoder.iterencode passes them; markers None: no cycle check.
    chunks = c_make_encoder(None, _refuse, strings, None, ":", ",", sort_keys, False, allow_nan)

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode
