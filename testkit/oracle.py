"""The test oracle: the three windowed metrics computed offline, straight from the spec.

Deliberately naive and independent of the framework (no tables, no agents, not even the event
parser): a test replays events through the real pipeline and compares what lands in KV with
:func:`expected_results`. Its own trust comes from the hand-computed cases in
``tests/unit/testkit/test_oracle.py``.

Conventions the framework's results must share:

- An event with time ``t`` (its ``occurred_at`` in epoch seconds) belongs to the window
  ``[floor(t/W)*W, floor(t/W)*W + W)``. The arithmetic here is exact (integer microseconds), so
  boundary cases such as ``12:00:59.999999`` do not depend on float rounding.
- Window ``start`` and ``end`` are written ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds, ``Z``).
- KV keys: ``progression.<student_id>.<start>``, ``engagement.<student_id>.<start>``,
  ``outcomes.<student_id>.<game_id>.<start>``, with ``<start>`` the window start as integer epoch
  seconds.
- Sums of integers stay integers; a sum involving a float is computed with :func:`math.fsum`
  (correctly rounded, independent of order), so compare float values with ``pytest.approx``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

__all__ = ["event_epoch", "expected_results", "format_window_time", "generate_sessions"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PROGRESSION_NAMES = frozenset({"level_started", "level_completed", "level_failed"})


def format_window_time(epoch_seconds: int) -> str:
    """A window bound as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(epoch_seconds, UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def event_epoch(event: Mapping[str, Any]) -> float:
    """The event's ``occurred_at`` in epoch seconds."""
    return datetime.fromisoformat(event["occurred_at"].upper()).timestamp()


def _window_start(occurred_at: str, window_seconds: int) -> int:
    # fromisoformat (3.11) reads every RFC 3339 form the contract admits once "t"/"z" are upper case.
    moment = datetime.fromisoformat(occurred_at.upper())
    return (moment - _EPOCH) // timedelta(seconds=window_seconds) * window_seconds


def _total(values: list[int | float]) -> int | float:
    if all(type(value) is int for value in values):
        return sum(values)
    return math.fsum(values)


@dataclass
class _Bucket:
    """The counted events of one metric, key and window, in arrival order."""

    metric: str
    key: dict[str, str]
    start: int
    events: list[Mapping[str, Any]] = field(default_factory=list)


def _progression(events: list[Mapping[str, Any]]) -> dict[str, Any]:
    by_name = {name: [e for e in events if e["name"] == name] for name in _PROGRESSION_NAMES}
    completed, failed = by_name["level_completed"], by_name["level_failed"]
    finished = len(completed) + len(failed)
    return {
        "levels_started": len(by_name["level_started"]),
        "levels_completed": len(completed),
        "levels_failed": len(failed),
        "max_level": max((e["data"]["level"] for e in completed), default=None),
        "score": _total([e["data"]["score"] for e in completed]),
        "completion_rate": len(completed) / finished if finished else None,
    }


def _engagement(events: list[Mapping[str, Any]]) -> dict[str, Any]:
    interactions = [e for e in events if e["type"] == "interaction"]
    answers = [e for e in interactions if type(e.get("data", {}).get("correct")) is bool]
    correct = sum(1 for e in answers if e["data"]["correct"])
    engagement = [e for e in events if e["type"] == "engagement"]
    return {
        "interactions": len(interactions),
        "answers": len(answers),
        "correct": correct,
        "accuracy": correct / len(answers) if answers else None,
        "active_seconds": _total([e["data"]["seconds"] for e in engagement if e["name"] == "heartbeat"]),
        "sessions": sum(1 for e in engagement if e["name"] == "session_started"),
    }


def _outcomes(events: list[Mapping[str, Any]]) -> dict[str, Any]:
    outcomes = [e["data"]["outcome"] for e in events]
    games = len(events)
    return {
        "games": games,
        "wins": outcomes.count("win"),
        "losses": outcomes.count("loss"),
        "abandons": outcomes.count("abandon"),
        "win_rate": outcomes.count("win") / games,
        "mean_score": _total([e["data"]["score"] for e in events]) / games,
        "mean_duration_ms": _total([e["data"]["duration_ms"] for e in events]) / games,
    }


_VALUES = {"progression": _progression, "engagement": _engagement, "outcomes": _outcomes}


def expected_results(
    events: Iterable[Mapping[str, Any]],
    window_seconds: int = 60,
    exclude_ids: Collection[str] = (),
) -> dict[str, dict[str, Any]]:
    """Every final result the pipeline should write, as ``{KV key: value}``.

    ``events`` are valid events as JSON-decoded dicts, in publication order: of several events
    with one ``event_id`` the first counts and the rest are ignored. Events whose id is in
    ``exclude_ids`` (for instance those that arrive after their window closed) count nowhere.
    A window without counted events has no result.
    """
    if type(window_seconds) is not int or window_seconds <= 0:
        raise ValueError(f"window_seconds must be a positive integer, got {window_seconds!r}")
    excluded = frozenset(exclude_ids)
    seen: set[str] = set()
    buckets: dict[str, _Bucket] = {}

    def count(metric: str, key: dict[str, str], start: int, event: Mapping[str, Any]) -> None:
        kv_key = ".".join([metric, *key.values(), str(start)])
        buckets.setdefault(kv_key, _Bucket(metric, key, start)).events.append(event)

    for event in events:
        event_id = event["event_id"]
        if event_id in seen:
            continue
        seen.add(event_id)
        if event_id in excluded:
            continue
        start = _window_start(event["occurred_at"], window_seconds)
        student = {"student_id": event["student_id"]}
        count("engagement", student, start, event)
        if event["type"] == "game" and event["name"] in _PROGRESSION_NAMES:
            count("progression", student, start, event)
        if event["type"] == "game" and event["name"] == "game_finished":
            count("outcomes", {**student, "game_id": event["game_id"]}, start, event)

    return {
        kv_key: {
            "metric": bucket.metric,
            "key": bucket.key,
            "window": {
                "start": format_window_time(bucket.start),
                "end": format_window_time(bucket.start + window_seconds),
            },
            "final": True,
            "events": len(bucket.events),
            "values": _VALUES[bucket.metric](bucket.events),
        }
        for kv_key, bucket in buckets.items()
    }


# Offsets producers use besides "Z": the event time is the same instant either way.
_OFFSETS = (
    UTC,
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=5, minutes=30)),
    timezone(timedelta(hours=-7)),
)


class _Session:
    """One student's activity, written as events in time order."""

    def __init__(
        self, rng: random.Random, seed: int, student: str, offset: timezone, start: float, end: int
    ) -> None:
        self.rng = rng
        self.seed = seed
        self.student = student
        self.clock = start
        self.end = end
        self.session_id = ""
        self.offset = offset
        self.events: list[dict[str, Any]] = []

    def start(self) -> None:
        self.session_id = f"{self.student}-sess-{self.rng.randrange(10**6):06d}"
        self.emit("engagement", "session_started", {})

    def emit(self, type_: str, name: str, data: dict[str, Any], **extra: str) -> None:
        # Whole milliseconds, rounded down so that no event lands on or after the end.
        moment = (_EPOCH + timedelta(milliseconds=math.floor(self.clock * 1000))).astimezone(self.offset)
        occurred_at = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event_id = f"ev-{self.seed}-{self.student}-{len(self.events):05d}"
        self.events.append(
            {
                "event_id": event_id,
                "student_id": self.student,
                "type": type_,
                "name": name,
                "occurred_at": occurred_at,
                "session_id": self.session_id,
                **extra,
                "data": data,
            }
        )

    def advance(self, low: float, high: float) -> bool:
        """Move the clock on; False once the session is over."""
        self.clock += self.rng.uniform(low, high)
        return self.clock < self.end

    def heartbeat_or_interaction(self) -> None:
        roll = self.rng.random()
        if roll < 0.3:
            self.emit("engagement", "heartbeat", {"seconds": self.rng.choice([15, 30, 12.5])})
        elif roll < 0.8:
            data = {"correct": self.rng.random() < 0.6}
            self.emit("interaction", "answer_submitted", data, activity_id=f"quiz-{self.rng.randrange(5)}")
        else:
            self.emit("interaction", "hint_opened", {})

    def game(self) -> None:
        game_id = self.rng.choice(["g-math", "g-words", "g-logic"])
        total_score = 0
        started = self.clock
        for level in range(self.rng.randint(1, 4)):
            self.emit("game", "level_started", {"level": level}, game_id=game_id)
            if not self.advance(5, 40):
                return  # the session ended mid-level: a game left without a result
            duration_ms = self.rng.randrange(4_000, 40_000)
            if self.rng.random() < 0.7:
                score = self.rng.randrange(10, 200)
                total_score += score
                data: dict[str, Any] = {"level": level, "score": score, "duration_ms": duration_ms}
                self.emit("game", "level_completed", data, game_id=game_id)
            else:
                data = {"level": level, "duration_ms": duration_ms}
                if self.rng.random() < 0.5:
                    data["score"] = self.rng.randrange(0, 50)
                self.emit("game", "level_failed", data, game_id=game_id)
                break
            if self.rng.random() < 0.3:
                self.heartbeat_or_interaction()
            if not self.advance(1, 10):
                return
        outcome = self.rng.choices(["win", "loss", "abandon"], weights=[5, 3, 2])[0]
        duration_ms = int((self.clock - started) * 1000)
        data = {"outcome": outcome, "score": total_score, "duration_ms": duration_ms}
        self.emit("game", "game_finished", data, game_id=game_id)


def generate_sessions(seed: int, students: int, minutes: int, start_epoch: int) -> list[dict[str, Any]]:
    """Realistic valid events for ``students`` students in ``[start_epoch, start_epoch + minutes*60)``.

    Same arguments, same events. Each student starts a session (sometimes two), plays games
    (levels started, completed or failed, with scores; games won, lost or abandoned), answers
    questions right or wrong, opens hints (interactions without ``correct``) and sends heartbeats.
    Times carry milliseconds and UTC offsets: student ``n`` uses offset ``n % 4`` of Z, +02:00,
    +05:30 and -07:00. Event ids are unique. Sorted by time, as producers would publish them.
    """
    rng = random.Random(seed)
    end = start_epoch + minutes * 60
    events: list[dict[str, Any]] = []
    for number in range(students):
        student = f"s{number:04d}"
        offset = _OFFSETS[number % len(_OFFSETS)]  # a student's device keeps its time zone
        session = _Session(rng, seed, student, offset, start_epoch + rng.uniform(0, 20), end)
        while session.clock < end:
            session.start()
            while session.advance(2, 25):
                if session.rng.random() < 0.25:
                    session.game()
                else:
                    session.heartbeat_or_interaction()
                if session.rng.random() < 0.01:
                    break  # a new session: the student reloaded the page
            else:
                break
        events.extend(session.events)
    events.sort(key=lambda event: datetime.fromisoformat(event["occurred_at"]))
    return events
