"""Settings.from_env: values read and refused with the variable named (METRICS_UPDATE_SECONDS,
NATS_URL, NATS_CONNECT_DEADLINE, the retention settings), and what the declarations derive."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from app.settings import SETTINGS, VARIABLES, Setting, Settings, help_lines
from bridges.connection import Secret
from bridges.limits import Limits, parse_duration, parse_size
from bridges.transport.options import TransportOptions
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


def test_update_seconds_is_documented_with_its_default_and_bounds() -> None:
    default, meaning = VARIABLES["METRICS_UPDATE_SECONDS"]
    assert default == "0" and '"final": false' in meaning
    assert "METRICS_UPDATE_SECONDS" in help_lines() and "(default 0; 0 (off) or >= 0.1)" in help_lines()


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


@pytest.mark.parametrize(
    ("raw", "urls"),
    [
        ("localhost:4222", ("nats://localhost:4222",)),
        ("localhost", ("nats://localhost",)),
        ("a:4222, tls://b:4222", ("nats://a:4222", "tls://b:4222")),
        ("nats://[::1]:4222", ("nats://[::1]:4222",)),
    ],
)
def test_a_nats_url_without_a_scheme_is_a_nats_server(raw: str, urls: tuple[str, ...]) -> None:
    """``host:port`` is how NATS clients spell a server too; the transport needs the scheme."""
    settings = Settings.from_env({"NATS_URL": raw})
    assert settings.nats_urls == urls
    assert settings.connection().servers == tuple(u.replace("tls://", "nats://") for u in urls)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("http://localhost:4222", "http:// is not a NATS scheme; use nats://, tls://, ws://, wss:// or host:port alone"),
        ("localhost:42x", "has an invalid port (0 to 65535)"),
        ("localhost:70000", "has an invalid port (0 to 65535)"),
        ("nats://:4222", "names no host"),
    ],
)
def test_a_malformed_nats_url_is_refused_in_one_sentence(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"NATS_URL": raw})
    assert str(caught.value).startswith(f"Setting 'NATS_URL' has value {raw!r}: {problem}")


@pytest.mark.parametrize(("raw", "host"), [(None, "127.0.0.1"), ("0.0.0.0", "0.0.0.0"), ("::", "::"),  # noqa: S104
                                          ("[::1]", "::1"), ("web.internal", "web.internal")])  # fmt: skip
def test_host_is_an_address_or_a_name(raw: str | None, host: str) -> None:
    assert Settings.from_env({} if raw is None else {"HOST": raw}).host == host


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("0.0.0.0:8080", "must be an address without a port (PORT sets the port)"),
        ("http://0.0.0.0", "must be an IP address or host name, without a scheme or path"),
        ("[]", "must be an IP address or host name, without a scheme or path"),
    ],
)
def test_a_bad_host_names_the_variable(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"HOST": raw})
    assert str(caught.value) == f"Setting 'HOST' has value {raw!r}: {problem}"


@pytest.mark.parametrize("raw", ["tenants", "tenants:", ":access", "my-tenants:access", "tenants:a.b"])
def test_read_access_names_a_module_and_an_attribute(raw: str) -> None:
    with pytest.raises(ConfigError, match="READ_ACCESS.*must be package.module:attribute"):
        Settings.from_env({"READ_ACCESS": raw})
    assert Settings.from_env({"READ_ACCESS": "school.access:tenants"}).read_access == "school.access:tenants"


def test_read_access_and_read_token_exclude_each_other() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"READ_ACCESS": "school.access:tenants", "READ_TOKEN": "tok-1"})
    assert "READ_ACCESS" in str(caught.value) and "exclude each other" in str(caught.value)
    assert "tok-1" not in str(caught.value)
    assert Settings.from_env({"READ_TOKEN": "tok-1"}).read_token == Secret("tok-1")


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


# -- retention ---------------------------------------------------------------------------------

DAY = 86400.0
#: every retention setting: (variable, where it lands, default)
RETENTIONS = [
    ("EVENTS_RETENTION", lambda s: s.events_limits.max_age, 7 * DAY),
    ("INGEST_RETENTION", lambda s: s.public_limits.ingest.max_age, 7 * DAY),
    ("RESULTS_RETENTION", lambda s: s.public_limits.results.max_age, 7 * DAY),
    ("DEADLETTER_RETENTION", lambda s: s.public_limits.deadletter.max_age, 14 * DAY),
    ("METRICS_TTL", lambda s: s.public_limits.metrics.max_age, 90 * DAY),
]
MAX_BYTES = [
    ("EVENTS_MAX_BYTES", lambda s: s.events_limits.max_bytes, -1),
    ("INGEST_MAX_BYTES", lambda s: s.public_limits.ingest.max_bytes, -1),
    ("RESULTS_MAX_BYTES", lambda s: s.public_limits.results.max_bytes, -1),
    ("DEADLETTER_MAX_BYTES", lambda s: s.public_limits.deadletter.max_bytes, -1),
    ("METRICS_MAX_BYTES", lambda s: s.public_limits.metrics.max_bytes, -1),
    ("CHANGELOG_MAX_BYTES", lambda s: s.changelog_max_bytes, 1 << 30),
]


@pytest.mark.parametrize(
    ("name", "read", "default"), RETENTIONS + MAX_BYTES, ids=[r[0] for r in RETENTIONS + MAX_BYTES]
)
def test_every_retention_setting_has_its_documented_default(name: str, read: Any, default: float) -> None:
    assert read(Settings.from_env(URL)) == default
    assert read(Settings()) == default, "the dataclass default and the environment's must agree"
    shown, _ = VARIABLES[name]
    assert (parse_size(shown) if "BYTES" in name else parse_duration(shown)) == default


@pytest.mark.parametrize(("name", "read", "default"), RETENTIONS, ids=[r[0] for r in RETENTIONS])
@pytest.mark.parametrize(
    ("raw", "seconds"), [("30d", 30 * DAY), ("36h", 36 * 3600.0), ("45m", 2700.0), ("3600s", 3600.0), ("7200", 7200.0)]
)
def test_retentions_take_units_or_seconds(name: str, read: Any, default: float, raw: str, seconds: float) -> None:
    assert read(Settings.from_env({**URL, name: raw})) == seconds


@pytest.mark.parametrize(("name", "read", "default"), MAX_BYTES, ids=[m[0] for m in MAX_BYTES])
@pytest.mark.parametrize(
    ("raw", "size"), [("10G", 10 << 30), ("512M", 512 << 20), ("1T", 1 << 40), ("2097152", 2 << 20)]
)
def test_byte_caps_take_units_or_bytes(name: str, read: Any, default: int, raw: str, size: int) -> None:
    assert read(Settings.from_env({**URL, name: raw})) == size


NOT_A_DURATION = "is not a duration: seconds, or a number with a d, h, m or s suffix (7d, 12h, 30m, 45s)"
NOT_A_SIZE = "is not a size: bytes, or a number with a K, M, G or T suffix (powers of 1024: 512M, 10G), or -1"


@pytest.mark.parametrize(
    ("name", "raw", "problem"),
    [
        ("EVENTS_RETENTION", "7x", NOT_A_DURATION),
        ("RESULTS_RETENTION", "-1d", NOT_A_DURATION),
        ("DEADLETTER_RETENTION", "a week", NOT_A_DURATION),
        ("METRICS_TTL", "0", "must be at least 1s"),
        ("INGEST_RETENTION", "0.5s", "must be at least 1s"),
        ("RESULTS_RETENTION", "36501d", "must be at most 36500d"),
        (
            "EVENTS_RETENTION", "5m",
            "must be at least 10m, the event dedupe window (a stream remembers ids only while it keeps their messages)",
        ),
        ("EVENTS_MAX_BYTES", "lots", NOT_A_SIZE),
        ("RESULTS_MAX_BYTES", "10", "must be -1 or at least 1M"),
        ("METRICS_MAX_BYTES", "0", "must be -1 or at least 1M"),
        ("INGEST_MAX_BYTES", "-2", NOT_A_SIZE),
        ("DEADLETTER_MAX_BYTES", "2000T", "must be at most 1024T"),
        ("CHANGELOG_MAX_BYTES", "-1", "must be a size, not -1: it is the only bound of what it limits"),
        ("CHANGELOG_MAX_BYTES", "1K", "must be at least 1M"),
    ],
)
def test_a_bad_retention_names_the_variable_the_value_and_the_problem(name: str, raw: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**URL, name: raw})
    assert str(caught.value) == f"Setting {name!r} has value {raw!r}: {problem}"


def test_the_events_limits_reach_the_workers_through_the_broker_url() -> None:
    settings = Settings.from_env(
        {**URL, "EVENTS_RETENTION": "36h", "EVENTS_MAX_BYTES": "2G", "CHANGELOG_MAX_BYTES": "3G"}
    )
    options = TransportOptions.from_urls([settings.broker_url()])
    assert (options.topic_retention, options.topic_max_bytes) == (36 * 3600.0, 2 << 30)
    assert options.changelog_max_bytes == 3 << 30


def test_the_public_limits_reach_the_streams() -> None:
    settings = Settings.from_env({**URL, "RESULTS_RETENTION": "2d", "DEADLETTER_MAX_BYTES": "1G", "METRICS_TTL": "30d"})
    streams = settings.public_streams()
    assert streams.update_limits and not settings.public_streams(update_limits=False).update_limits
    assert (streams.results_config().max_age, streams.deadletter_config().max_bytes) == (2 * DAY, 1 << 30)
    assert streams.limits.metrics == Limits(30 * DAY)


# -- the declarations ----------------------------------------------------------------------------


def test_every_field_is_one_declared_setting() -> None:
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names)) == len(fields(Settings))
    assert list(VARIABLES) == names


def test_an_empty_environment_gives_the_field_defaults() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings().data_dir == Path("data") and Settings().nats_urls == ()


@pytest.mark.parametrize("declared", SETTINGS, ids=lambda s: s.name)
def test_a_blank_value_is_the_default(declared: Setting[Any]) -> None:
    assert declared.read({declared.name: ""}) == declared.default_value


@pytest.mark.parametrize("declared", SETTINGS, ids=lambda s: s.name)
def test_help_lists_every_setting_with_its_default_and_bounds(declared: Setting[Any]) -> None:
    (line,) = [line for line in help_lines().splitlines() if line.split()[0] == declared.name]
    assert declared.meaning in line and declared.kind.bounds in line
    assert f"default {declared.default}" in line if declared.default else "unset by default" in line


@pytest.mark.parametrize(
    ("name", "raw", "problem"),
    [
        ("PORT", "http", "is not a valid int"),
        ("PORT", "65536", "must be <= 65535"),
        ("PARTITIONS", "0", "must be >= 1"),
        ("NATS_REPLICAS", "2", "must be one of 1, 3, 5"),
        ("SESSION_TIMEOUT", "1", "must be >= 1.5"),
        ("LOG_LEVEL", "LOUD", "must be one of debug, info, warning, error"),
        ("NATS_CREDS", "/nonexistent/user.creds", "is not a readable file"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_the_problem(name: str, raw: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**URL, name: raw})
    assert str(caught.value) == f"Setting {name!r} has value {raw!r}: {problem}"


def test_settings_that_go_together() -> None:
    with pytest.raises(ConfigError, match="NATS_PASSWORD.*needs NATS_USER as well"):
        Settings.from_env({**URL, "NATS_PASSWORD": "s3cr3t"})
    assert Settings.from_env({**URL, "NATS_USER": "u", "NATS_PASSWORD": "s3cr3t"}).credentials().password.value == "s3cr3t"
    with pytest.raises(ConfigError, match="NATS_TLS_KEY go together"):
        Settings.from_env({**URL, "NATS_TLS_CERT": __file__})


def test_a_credential_in_nats_url_is_not_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"NATS_URL": "nats://svc:s3cr3t@127.0.0.1:4222"})
    assert "s3cr3t" not in str(caught.value) and "<redacted>" in str(caught.value)
