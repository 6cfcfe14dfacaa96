"""A reply-inbox prefix per role: from NATS_INBOX_PREFIX or the broker URL to nats-py's connect.

Server permissions can then give each user only its own replies (``_INBOX_<role>.>``) instead of
every client's (``_INBOX.>``); see docs/operations.md.
"""

from __future__ import annotations

import pytest

from app.settings import Settings
from bridges.connection import ConnectionSettings
from bridges.transport.options import TransportOptions
from tables.errors import ConfigError


def test_the_default_is_nats_py_s_and_is_not_passed_on() -> None:
    settings = ConnectionSettings.from_urls("nats://127.0.0.1:4222")
    assert settings.inbox_prefix == "_INBOX"
    assert "inbox_prefix" not in settings.connect_options()


def test_a_broker_url_option_sets_it_and_the_transport_leaves_it_to_the_connection() -> None:
    url = "nats://127.0.0.1:4222?inbox_prefix=_INBOX_worker&replicas=3"
    assert ConnectionSettings.from_urls(url).connect_options()["inbox_prefix"] == "_INBOX_worker"
    assert TransportOptions.from_urls([url]).replicas == 3


def test_the_setting_reaches_both_the_connection_and_the_broker_url() -> None:
    settings = Settings.from_env({"NATS_URL": "nats://127.0.0.1:4222", "NATS_INBOX_PREFIX": "_INBOX_ingest"})
    assert settings.connection().inbox_prefix == "_INBOX_ingest"
    assert "inbox_prefix=_INBOX_ingest" in settings.broker_url()
    assert "inbox_prefix" not in Settings.from_env({"NATS_URL": "nats://127.0.0.1:4222"}).broker_url()


@pytest.mark.parametrize("prefix", ["", "_INBOX.*", "_INBOX.>", "a..b", ".a", "a b", "_INBOX_\u00e9"])
def test_wildcards_empty_tokens_and_other_characters_are_refused(prefix: str) -> None:
    with pytest.raises(ConfigError, match="inbox_prefix"):
        ConnectionSettings(inbox_prefix=prefix)
