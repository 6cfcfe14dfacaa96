"""Connection settings: server URLs, user-info, TLS and query parameters, credentials, no leaks."""

from __future__ import annotations

import ssl
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust.auth
import pytest
from yarl import URL

from bridges.connection import DEFAULT_URL, ConnectionSettings, NatsCredentials, Secret
from tables.errors import ConfigError

PASSWORD = "pa55-w0rd-xyzzy"
TOKEN = "t0ken-plugh-42"


# -- servers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("urls", "servers"),
    [
        pytest.param("nats://a:4222", ("nats://a:4222",), id="one"),
        pytest.param("nats://a:4222,nats://b:4223", ("nats://a:4222", "nats://b:4223"), id="comma"),
        pytest.param("nats://a:4222;nats://b:4223", ("nats://a:4222", "nats://b:4223"), id="semicolon"),
        pytest.param(" nats://a:1 , nats://b:2 ;", ("nats://a:1", "nats://b:2"), id="blanks-and-trailing"),
        pytest.param(["nats://a:1", URL("nats://b:2")], ("nats://a:1", "nats://b:2"), id="list-with-yarl"),
        pytest.param(["nats://a:1,nats://b:2", "nats://c:3"], ("nats://a:1", "nats://b:2", "nats://c:3"),
                     id="list-of-comma-lists"),
        pytest.param("nats://a", ("nats://a",), id="no-port"),
        pytest.param("tls://a:4222", ("nats://a:4222",), id="tls-becomes-nats"),
        pytest.param("ws://a:80,wss://b:443", ("ws://a:80", "wss://b:443"), id="websockets"),
        pytest.param("nats://a:4222/path?x=1#frag", ("nats://a:4222",), id="path-query-fragment-dropped"),
    ],
)
def test_servers(urls: Any, servers: tuple[str, ...]) -> None:
    assert ConnectionSettings.from_urls(urls).servers == servers


def test_defaults() -> None:
    settings = ConnectionSettings()
    assert settings.servers == (DEFAULT_URL,)
    assert settings.connect_options() == {"servers": [DEFAULT_URL], "name": "learning-streams"}


# -- user-info -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "user", "password", "token"),
    [
        pytest.param(f"nats://alice:{PASSWORD}@h:4222", "alice", PASSWORD, None, id="user-password"),
        pytest.param(f"nats://{TOKEN}@h:4222", None, None, TOKEN, id="token"),
        pytest.param("nats://al%40ice:p%3Aw%2F@h:4222", "al@ice", "p:w/", None, id="percent-encoded"),
        pytest.param("nats://alice:@h:4222", "alice", "", None, id="empty-password"),
        pytest.param(f"tls://alice:{PASSWORD}@h:4222", "alice", PASSWORD, None, id="tls-scheme"),
    ],
)
def test_user_info_is_extracted_and_removed_from_servers(
    url: str, user: str | None, password: str | None, token: str | None
) -> None:
    settings = ConnectionSettings.from_urls(url)
    assert settings.servers == ("nats://h:4222",)
    assert settings.user == user
    assert (settings.password.value if settings.password else None) == password
    assert (settings.token.value if settings.token else None) == token


def test_user_info_of_the_first_url_wins() -> None:
    settings = ConnectionSettings.from_urls("nats://a:pw-a@h1:1,nats://b:pw-b@h2:2")
    assert settings.user == "a"
    assert settings.password == Secret("pw-a")
    assert settings.servers == ("nats://h1:1", "nats://h2:2")


# -- TLS and query parameters ----------------------------------------------------------------


def test_tls_scheme_without_a_ca_uses_the_default_verifying_context() -> None:
    settings = ConnectionSettings.from_urls("tls://h:4222")
    context = settings.tls_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert settings.connect_options()["tls"] is context


def test_plain_nats_has_no_tls() -> None:
    settings = ConnectionSettings.from_urls("nats://h:4222")
    assert settings.tls_context() is None
    assert "tls" not in settings.connect_options()


def test_query_parameters_become_settings() -> None:
    settings = ConnectionSettings.from_urls(
        "tls://h:4222?creds=/s/app.creds&tls_ca=/s/ca.pem&tls_cert=/s/c.pem&tls_key=/s/k.pem&connect_deadline=2.5"
    )
    assert (settings.creds_file, settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file) == (
        "/s/app.creds",
        "/s/ca.pem",
        "/s/c.pem",
        "/s/k.pem",
    )
    assert settings.connect_deadline == 2.5
    # A CA file is given: the context is built from it when connecting, not the default one.
    assert settings.ssl_context is None


def test_keyword_overrides_apply_last() -> None:
    settings = ConnectionSettings.from_urls("nats://h:1?connect_deadline=9", name="me", connect_deadline=3.0)
    assert (settings.name, settings.connect_deadline) == ("me", 3.0)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param("soon", "must be a number of seconds", id="text"),
        pytest.param("0", "must be > 0", id="zero"),
        pytest.param("-1", "must be > 0", id="negative"),
    ],
)
def test_invalid_connect_deadline_names_the_option_and_value(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ConnectionSettings.from_urls(f"nats://h:4222?connect_deadline={raw}")
    assert (caught.value.field, caught.value.value, caught.value.problem) == ("connect_deadline", raw, problem)
    assert f"'connect_deadline' has value {raw!r}" in str(caught.value)


@pytest.mark.parametrize(
    ("urls", "value", "problem"),
    [
        pytest.param("", "", "at least one server URL is needed", id="empty"),
        pytest.param([], "", "at least one server URL is needed", id="empty-list"),
        pytest.param(" , ; ", "", "at least one server URL is needed", id="only-separators"),
        pytest.param("http://h:4222", "http://h:4222", "scheme must be one of", id="http-scheme"),
        pytest.param("nats://:4222", "nats://:4222", "has no host", id="no-host"),
    ],
)
def test_bad_urls_raise_config_error_naming_nats_url(urls: Any, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ConnectionSettings.from_urls(urls)
    assert (caught.value.field, caught.value.value) == ("NATS_URL", value)
    assert problem in caught.value.problem


def test_a_url_without_a_scheme_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        ConnectionSettings.from_urls("127.0.0.1:4222")
    assert caught.value.field == "NATS_URL"
    assert "scheme must be one of" in caught.value.problem


# -- credentials -----------------------------------------------------------------------------


def test_nats_credentials_win_over_the_url() -> None:
    settings = ConnectionSettings.from_urls(
        "nats://url-user:url-pw@h:4222",
        credentials=NatsCredentials(user="bob", password=PASSWORD),
    )
    assert (settings.user, settings.password) == ("bob", Secret(PASSWORD))


def test_nats_credentials_fill_in_without_erasing_what_the_url_gave() -> None:
    settings = ConnectionSettings.from_urls(
        "nats://url-user:url-pw@h:4222?tls_ca=/url/ca.pem",
        credentials=NatsCredentials(creds_file="/s/app.creds", tls_cert_file="/s/c.pem", tls_key_file="/s/k.pem"),
    )
    assert (settings.user, settings.password) == ("url-user", Secret("url-pw"))
    assert (settings.creds_file, settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file) == (
        "/s/app.creds",
        "/url/ca.pem",
        "/s/c.pem",
        "/s/k.pem",
    )


def test_nats_credentials_token() -> None:
    settings = ConnectionSettings.from_urls("nats://h:4222", credentials=NatsCredentials(token=TOKEN))
    assert settings.token == Secret(TOKEN)
    assert settings.connect_options()["token"] == TOKEN


def test_sasl_credentials_give_user_password_and_context() -> None:
    context = ssl.create_default_context()
    settings = ConnectionSettings.from_urls(
        "nats://h:4222",
        credentials=faust.auth.SASLCredentials(username="carol", password=PASSWORD, ssl_context=context),
    )
    assert (settings.user, settings.password, settings.ssl_context) == ("carol", Secret(PASSWORD), context)


@pytest.mark.parametrize(
    "make_credentials",
    [
        pytest.param(lambda ctx: faust.auth.SSLCredentials(ctx), id="ssl-credentials"),
        pytest.param(lambda ctx: ctx, id="bare-ssl-context"),
        pytest.param(lambda ctx: NatsCredentials(ssl_context=ctx), id="nats-credentials"),
    ],
)
def test_an_ssl_context_from_the_credentials_is_used(make_credentials: Callable[[ssl.SSLContext], Any]) -> None:
    context = ssl.create_default_context()
    settings = ConnectionSettings.from_urls("nats://h:4222", credentials=make_credentials(context))
    assert settings.ssl_context is context
    assert settings.connect_options()["tls"] is context


def test_an_ssl_context_argument_is_used() -> None:
    context = ssl.create_default_context()
    assert ConnectionSettings.from_urls("nats://h:4222", ssl_context=context).tls_context() is context


def test_unsupported_credentials_are_rejected_by_type_name() -> None:
    with pytest.raises(ConfigError) as caught:
        ConnectionSettings.from_urls(
            "nats://h:4222", credentials=faust.auth.GSSAPICredentials(kerberos_service_name="k")
        )
    assert (caught.value.field, caught.value.value) == ("broker_credentials", "GSSAPICredentials")


def test_connect_options_carry_the_secrets_for_nats_py() -> None:
    settings = ConnectionSettings.from_urls(
        f"nats://alice:{PASSWORD}@h:4222,nats://g:4223?creds=/s/app.creds",
        credentials=NatsCredentials(token=TOKEN),
        name="worker-1",
    )
    assert settings.connect_options() == {
        "servers": ["nats://h:4222", "nats://g:4223"],
        "name": "worker-1",
        "user": "alice",
        "password": PASSWORD,
        "token": TOKEN,
        "user_credentials": "/s/app.creds",
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"password": PASSWORD}, "password", id="password-without-user"),
        pytest.param({"tls_cert_file": "/c.pem"}, "tls_key_file", id="cert-without-key"),
        pytest.param({"tls_key_file": "/k.pem"}, "tls_cert_file", id="key-without-cert"),
    ],
)
def test_inconsistent_nats_credentials_name_the_field(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        NatsCredentials(**kwargs)
    assert caught.value.field == field


# -- secrets never shown ---------------------------------------------------------------------

SECRET_HOLDERS = [
    pytest.param(lambda: Secret(PASSWORD), id="secret"),
    pytest.param(
        lambda: ConnectionSettings.from_urls(f"nats://alice:{PASSWORD}@h:4222"), id="settings-url-password"
    ),
    pytest.param(lambda: ConnectionSettings.from_urls(f"nats://{TOKEN}@h:4222"), id="settings-url-token"),
    pytest.param(
        lambda: ConnectionSettings.from_urls(
            "nats://h:4222", credentials=NatsCredentials(user="alice", password=PASSWORD, token=TOKEN)
        ),
        id="settings-nats-credentials",
    ),
    pytest.param(
        lambda: ConnectionSettings.from_urls(
            "nats://h:4222", credentials=faust.auth.SASLCredentials(username="alice", password=PASSWORD)
        ),
        id="settings-sasl-credentials",
    ),
    pytest.param(lambda: NatsCredentials(user="alice", password=PASSWORD, token=TOKEN), id="nats-credentials"),
]


@pytest.mark.parametrize("make", SECRET_HOLDERS)
def test_secrets_never_appear_in_repr_or_str(make: Callable[[], object]) -> None:
    holder = make()
    for text in (repr(holder), str(holder), f"{holder}", f"{holder!r}"):
        assert PASSWORD not in text and TOKEN not in text


def test_settings_repr_says_which_kinds_of_auth_are_set() -> None:
    settings = ConnectionSettings.from_urls(
        f"nats://alice:{PASSWORD}@h:4222", credentials=NatsCredentials(token=TOKEN)
    )
    assert repr(settings) == "<ConnectionSettings servers=['nats://h:4222'] user='alice' password token>"


CONFIG_ERRORS_WITH_SECRETS = [
    pytest.param(lambda: ConnectionSettings.from_urls(f"http://alice:{PASSWORD}@h:4222"), id="bad-scheme"),
    pytest.param(lambda: ConnectionSettings.from_urls(f"http://{TOKEN}@h:4222"), id="bad-scheme-token"),
    pytest.param(lambda: ConnectionSettings.from_urls(f"nats://alice:{PASSWORD}@:4222"), id="no-host"),
    pytest.param(
        lambda: ConnectionSettings.from_urls(f"nats://alice:{PASSWORD}@h:4222?connect_deadline=x"),
        id="bad-connect-deadline",
    ),
    pytest.param(
        lambda: ConnectionSettings.from_urls(f"nats://h:4222,http://{TOKEN}@g:1"), id="bad-second-url"
    ),
    pytest.param(lambda: NatsCredentials(password=PASSWORD), id="password-without-user"),
    pytest.param(
        lambda: ConnectionSettings.from_urls(
            f"nats://alice:{PASSWORD}@h:4222", credentials=faust.auth.GSSAPICredentials()
        ),
        id="unsupported-credentials",
    ),
]


@pytest.mark.parametrize("fail", CONFIG_ERRORS_WITH_SECRETS)
def test_secrets_never_appear_in_config_errors(fail: Callable[[], object]) -> None:
    with pytest.raises(ConfigError) as caught:
        fail()
    text = "".join(traceback.format_exception(caught.value)) + repr(caught.value) + repr(caught.value.value)
    assert PASSWORD not in text and TOKEN not in text


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("nats://h:99999", id="port-out-of-range"),
        pytest.param("nats://h:port", id="port-not-a-number"),
        pytest.param(f"nats://alice:{PASSWORD}@h:99999", id="port-out-of-range-with-user-info"),
        pytest.param("http://h:port", id="bad-scheme-and-bad-port"),
    ],
)
def test_a_bad_port_raises_config_error_naming_nats_url(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ConnectionSettings.from_urls(url)
    assert caught.value.field == "NATS_URL"
    assert PASSWORD not in str(caught.value)


def test_repr_does_not_need_the_tls_files_to_exist(tmp_path: Path) -> None:
    # A settings object is "safe to print" even before its CA file is in place (or when a typo
    # in the path is what the log line is meant to show).
    settings = ConnectionSettings.from_urls(f"tls://h:4222?tls_ca={tmp_path / 'missing-ca.pem'}")
    assert "tls" in repr(settings)


def test_a_ca_file_from_the_credentials_is_used_for_a_tls_url(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    settings = ConnectionSettings.from_urls("tls://h:4222", credentials=NatsCredentials(tls_ca_file=str(missing)))
    # The context must be built from the CA file given (missing here, so building it fails loudly)
    # rather than be the default context chosen for the tls:// scheme before the merge.
    with pytest.raises(FileNotFoundError):
        settings.tls_context()
