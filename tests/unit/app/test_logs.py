"""app.logs: LOG_FORMAT=json makes one JSON object per record, with the fields that matter when a
record carries them; say() follows the format; text stays the familiar line."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from app.logs import JsonFormatter, configure_logging, say


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, put back as it was afterwards (pytest's own capture handlers included)."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    try:
        yield logger
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(level)


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("agents.windowed.runtime", logging.WARNING, __file__, 1, message, args, None)
    made.created = 1_777_629_600.25  # 2026-05-01T10:00:00.250Z
    made.__dict__.update(extra)
    return made


def test_a_record_is_one_json_object_with_time_level_logger_and_message() -> None:
    line = JsonFormatter().format(record("%s: partition %d resumes", "progression", 3))
    assert json.loads(line) == {
        "time": "2026-05-01T10:00:00.250Z",
        "level": "warning",
        "logger": "agents.windowed.runtime",
        "message": "progression: partition 3 resumes",
    }


def test_the_fields_that_matter_come_from_extra_when_present() -> None:
    given = record("window failed", metric="outcomes", partition=0, key={"student_id": "s1"},
                   window="2026-05-01T10:00:00Z/2026-05-01T10:01:00Z", other="not a field")  # fmt: skip
    shown = json.loads(JsonFormatter().format(given))
    assert {k: shown[k] for k in ("metric", "partition", "key", "window")} == {
        "metric": "outcomes", "partition": 0, "key": {"student_id": "s1"},
        "window": "2026-05-01T10:00:00Z/2026-05-01T10:01:00Z",
    }  # fmt: skip
    assert "other" not in shown


def test_a_table_a_traceback_and_escape_codes_stay_on_one_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        given = record("table:\n+---+\n| \x1b[1mx\x1b[0m |\n+---+")
        given.exc_info = sys.exc_info()
    line = JsonFormatter().format(given)
    assert "\n" not in line and "\x1b" not in line
    shown = json.loads(line)
    assert shown["message"].startswith("table:\n+---+") and "RuntimeError: boom" in shown["exception"]


def test_configure_logging_json_replaces_the_handlers(root: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging("warning", "json", stream=out)
    logging.getLogger("x").info("not shown")
    logging.getLogger("x").warning("shown %d", 1, extra={"partition": 2})
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["message"] == "shown 1" and json.loads(line)["partition"] == 2
    assert len(root.handlers) == 1


def test_configure_logging_text_is_the_familiar_line(root: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging("info", "text", stream=out)
    logging.getLogger("x.y").info("hello", extra={"metric": "m"})
    assert out.getvalue().endswith(" INFO x.y: hello\n")


def test_say_prints_the_line_in_text_and_a_json_object_in_json(root: logging.Logger) -> None:
    configure_logging("error", "text", stream=io.StringIO())
    text = io.StringIO()
    say("web listening on http://127.0.0.1:8080", file=text)  # whatever LOG_LEVEL
    assert text.getvalue() == "web listening on http://127.0.0.1:8080\n"
    configure_logging("error", "json", stream=io.StringIO())
    out = io.StringIO()
    say("web listening on http://127.0.0.1:8080", logger="app.web.process", file=out)
    shown = json.loads(out.getvalue())
    assert (shown["level"], shown["logger"], shown["message"]) == (
        "info", "app.web.process", "web listening on http://127.0.0.1:8080"
    )


def test_an_unknown_format_is_refused(root: logging.Logger) -> None:
    with pytest.raises(ValueError, match="neither text nor json"):
        configure_logging("info", "yaml")
