"""How every process logs (``LOG_LEVEL``, ``LOG_FORMAT``), configured once by the CLI.

``LOG_FORMAT=text`` (the default) writes ``time level logger: message`` lines for people;
``LOG_FORMAT=json`` writes one JSON object per line for a log pipeline::

    {"time": "2026-05-01T10:00:00.123Z", "level": "info", "logger": "agents.windowed.runtime",
     "message": "progression: partition 3 resumes at offset 120 with 4 open windows (0 to repair)",
     "metric": "progression", "partition": 3}

``time`` is UTC with milliseconds; ``level`` is lower case; an exception adds ``exception`` (its
traceback, as one string). The fields of :data:`FIELDS` are added when a record carries them,
given with ``extra=`` at the call (``log.info(..., extra={"metric": name, "partition": 3})``): the
code that logs needs nothing from this module. A message that spans lines (faust's tables) stays
one object.

What a process prints on purpose for whoever started it (``web listening on ...``) goes through
:func:`say`: the line itself as text, a JSON object of the same shape as the logs in JSON, so a
process's output parses line by line whatever it writes.

Neither format writes terminal escape codes; the metric workers turn faust's spinner and its
console messages off (:mod:`app.worker.process`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any, Final

__all__ = ["FIELDS", "JsonFormatter", "configure_logging", "say"]

#: the record attributes a JSON line carries when present: what an operator filters by
FIELDS: Final = ("metric", "partition", "window", "key")

_TEXT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _utc(seconds: float) -> str:
    whole = time.gmtime(seconds)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', whole)}.{int(seconds % 1 * 1000):03d}Z"


def _line(seconds: float, level: str, logger: str, message: str, fields: dict[str, Any]) -> str:
    document = {"time": _utc(seconds), "level": level, "logger": logger, "message": message, **fields}
    # default=str: a field given as a set, a path or a datetime is still one line of JSON.
    return json.dumps(document, ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (json escapes newlines and control characters)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {name: getattr(record, name) for name in FIELDS if getattr(record, name, None) is not None}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return _line(record.created, record.levelname.lower(), record.name, record.getMessage(), fields)


def configure_logging(level: str, log_format: str, *, stream: IO[str] | None = None) -> None:
    """Send every logger's records at ``level`` and above to ``stream`` (stderr) in ``log_format``,
    replacing whatever handlers the root logger had."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log format {log_format!r} is neither text nor json")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def say(message: str, *, logger: str = "app", level: str = "info", file: IO[str] | None = None) -> None:
    """Print ``message`` for whoever started the process (always, whatever ``LOG_LEVEL``): as it
    is in text format, as a JSON line of ``level`` in JSON format (stdout, or ``file``)."""
    as_json = any(isinstance(handler.formatter, JsonFormatter) for handler in logging.getLogger().handlers)
    line = _line(time.time(), level, logger, message, {}) if as_json else message
    print(line, file=file if file is not None else sys.stdout, flush=True)
