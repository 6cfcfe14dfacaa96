"""Settings.from_env: values read and refused with the variable named (METRICS_UPDATE_SECONDS, NATS_URL, NATS_CONNECT_DEADLINE)."""

from __future__ import annotations

import pytest

from app.settings import VARIABLES, Settings
from tables.errors import ConfigError

URL = {"NATS_URL": "nats://127.0.0.1:4222"}


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(None, 0.0), ("", 0.0), ("0", 0.0), ("0.0", 0.0), ("0.1", 0.1), ("0.25", 0.25), (" 2 ", 2.0), ("1e1", 10.0)],
)
def test_update_seconds_is_read_as_seconds(raw: str | None, seconds: float) -> None:
    env = URL if raw is None else {**URL, "METRICS_UPDATE_SECONDS": raw}
    assert Settings.from_env(env).update_seconds == seconds


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("-1", "must be 0 (off) or >= 0.1"),
        ("0.001", "must be 0 (off) or >= 0.1"),
        ("0.099", "must be 0 (off) or >= 0.1"),
        ("-0.05", "must be 0 (off) or >= 0.1"),
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
    assert default == "0" and '"final": false' in meaning and "at least 0.1" in meaning


@pytest.mark.parametrize(
    "url",
    [
        "nats://127.0.0.1:4222?connect_deadline=3",
        "nats://127.0.0.1:4222?token=s3cr3t",
        "nats://127.0.0.1:4222/faust",
        "nats://a:4222,nats://b:4222?prefix=other",
    ],
)
def test_nats_url_names_servers_only(url: str) -> None:
    """Options in the URL would be a second source for what the settings set (and faust's broker
    URL, built from both, would be malformed)."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"NATS_URL": url})
    assert "NATS_URL" in str(caught.value) and "without a path or ?options" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_the_connect_deadline_reaches_the_connection_and_the_broker_url() -> None:
    settings = Settings.from_env({"NATS_URL": "nats://a:4222,nats://b:4222", "NATS_CONNECT_DEADLINE": "7.5"})
    assert settings.connection().connect_deadline == 7.5
    assert settings.broker_url().count("connect_deadline=7.5") == 2
    assert Settings.from_env(URL).connection().connect_deadline == 60.0


@pytest.mark.parametrize(("raw", "problem"), [("0", "must be >= 1"), ("inf", "must be a finite number of seconds")])
def test_a_bad_connect_deadline_names_the_variable(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**URL, "NATS_CONNECT_DEADLINE": raw})
    assert str(caught.value) == f"Setting 'NATS_CONNECT_DEADLINE' has value {raw!r}: {problem}"
