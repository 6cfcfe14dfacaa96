"""Settings.from_env: METRICS_UPDATE_SECONDS, read and refused like every other setting."""

from __future__ import annotations

import pytest

from app.settings import VARIABLES, Settings
from tables.errors import ConfigError

URL = {"NATS_URL": "nats://127.0.0.1:4222"}


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(None, 0.0), ("", 0.0), ("0", 0.0), ("0.25", 0.25), (" 2 ", 2.0), ("1e1", 10.0)],
)
def test_update_seconds_is_read_as_seconds(raw: str | None, seconds: float) -> None:
    env = URL if raw is None else {**URL, "METRICS_UPDATE_SECONDS": raw}
    assert Settings.from_env(env).update_seconds == seconds


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("-1", "must be >= 0"),
        ("soon", "is not a valid float"),
        ("nan", "must be a finite number of seconds"),
        ("inf", "must be a finite number of seconds"),
    ],
)
def test_a_bad_update_seconds_names_the_variable_and_the_value(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**URL, "METRICS_UPDATE_SECONDS": raw})
    assert str(caught.value) == f"Setting 'METRICS_UPDATE_SECONDS' has value {raw!r}: {problem}"


def test_update_seconds_is_documented_with_its_default() -> None:
    default, meaning = VARIABLES["METRICS_UPDATE_SECONDS"]
    assert default == "0" and '"final": false' in meaning
