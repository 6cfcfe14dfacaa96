"""Connecting to real servers that demand a password, a token, TLS or a client certificate.

Each test writes a nats-server configuration into its tmp_path and starts that server on port 0.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from nats.aio.client import Client

from bridges.connection import ConnectionSettings, NatsCredentials, connect
from bridges.server import NatsServer, free_port
from tables.errors import BrokenError
from testkit.tls import TlsFiles, make_tls_files, openssl_path

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-pa55-qwerty"
TOKEN = "t0ken-zyxw-9876"
#: connect_deadline of the attempts that must fail: they give up after it
SHORT_DEADLINE = 1.0
#: a bound on a failing connect, far above SHORT_DEADLINE: it proves the attempt gives up
GIVE_UP_BOUND = SHORT_DEADLINE + 20.0

StartServer = Callable[[str], Awaitable[NatsServer]]


@pytest.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """Start nats-servers with the given configuration text; all are stopped afterwards."""
    async with AsyncExitStack() as stack:
        count = 0

        async def start(config: str) -> NatsServer:
            nonlocal count
            count += 1
            config_file = tmp_path / f"server{count}.conf"
            config_file.write_text(config)
            server = NatsServer(tmp_path / f"server{count}", config_file=config_file)
            return await stack.enter_async_context(server)

        yield start


@pytest.fixture
async def connections() -> AsyncIterator[Callable[[ConnectionSettings], Awaitable[Client]]]:
    """``connect`` whose successful clients are closed when the test ends."""
    opened: list[Client] = []

    async def open_(settings: ConnectionSettings) -> Client:
        client = await connect(settings)
        opened.append(client)
        return client

    yield open_
    for client in opened:
        await client.close()


async def assert_usable(client: Client) -> None:
    assert client.is_connected
    sub = await client.subscribe("ping.>")
    await client.publish("ping.1", b"x")
    assert (await sub.next_msg(timeout=10)).data == b"x"


async def refused(settings: ConnectionSettings) -> BrokenError:
    """Connect, expecting a BrokenError within a bound well above the connect deadline."""
    with pytest.raises(BrokenError) as caught:
        await asyncio.wait_for(connect(settings), GIVE_UP_BOUND)
    return caught.value


USERS = f'authorization {{ user: alice, password: "{PASSWORD}" }}'
TOKENS = f'authorization {{ token: "{TOKEN}" }}'


# -- user/password and token -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "url", "credentials"),
    [
        pytest.param(USERS, "{url}", NatsCredentials(user="alice", password=PASSWORD), id="user-password"),
        pytest.param(TOKENS, "{url}", NatsCredentials(token=TOKEN), id="token"),
        pytest.param(USERS, f"nats://alice:{PASSWORD}@{{host_port}}", None, id="user-password-in-url"),
        pytest.param(TOKENS, f"nats://{TOKEN}@{{host_port}}", None, id="token-in-url"),
    ],
)
async def test_credentials_are_accepted(
    start_server: StartServer,
    connections: Callable[[ConnectionSettings], Awaitable[Client]],
    config: str,
    url: str,
    credentials: NatsCredentials | None,
) -> None:
    server = await start_server(config)
    host_port = f"{server.host}:{server.port}"
    settings = ConnectionSettings.from_urls(
        url.format(url=server.url, host_port=host_port), credentials=credentials
    )
    await assert_usable(await connections(settings))


@pytest.mark.parametrize(
    ("config", "credentials"),
    [
        pytest.param(USERS, NatsCredentials(user="alice", password="wrong-" + PASSWORD), id="wrong-password"),
        pytest.param(USERS, NatsCredentials(user="mallory", password=PASSWORD), id="wrong-user"),
        pytest.param(TOKENS, NatsCredentials(token="wrong-" + TOKEN), id="wrong-token"),
        pytest.param(USERS, None, id="no-credentials"),
    ],
)
async def test_refused_credentials_fail_within_the_deadline_without_leaking(
    start_server: StartServer,
    caplog: pytest.LogCaptureFixture,
    config: str,
    credentials: NatsCredentials | None,
) -> None:
    server = await start_server(config)
    settings = ConnectionSettings.from_urls(
        server.url, credentials=credentials, connect_deadline=SHORT_DEADLINE
    )
    with caplog.at_level(logging.DEBUG, logger="bridges"):
        error = await refused(settings)
    assert server.url in str(error)
    for text in (str(error), repr(error), caplog.text):
        assert PASSWORD not in text and TOKEN not in text


async def test_an_unreachable_server_fails_within_the_deadline_naming_it() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    error = await refused(ConnectionSettings.from_urls(url, connect_deadline=SHORT_DEADLINE))
    assert url in str(error)


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    if openssl_path() is None:
        pytest.skip("the openssl command is not installed, so no test certificates can be made")
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def tls_config(files: TlsFiles, *, verify_clients: bool = False) -> str:
    # A generous handshake timeout: the default half second is short on a busy machine.
    lines = [f'cert_file: "{files.server_cert}"', f'key_file: "{files.server_key}"', "timeout: 10"]
    if verify_clients:
        lines += [f'ca_file: "{files.ca_cert}"', "verify: true"]
    return "tls {\n  " + "\n  ".join(lines) + "\n}\n"


def tls_url(server: NatsServer, query: str = "") -> str:
    return f"tls://{server.host}:{server.port}{query}"


@pytest.mark.parametrize(
    ("url", "credentials"),
    [
        pytest.param("tls://{host_port}?tls_ca={ca}", None, id="ca-in-tls-url"),
        pytest.param(
            "nats://{host_port}", lambda files: NatsCredentials(tls_ca_file=str(files.ca_cert)),
            id="ca-in-credentials",
        ),
    ],
)
async def test_tls_with_our_ca_connects(
    start_server: StartServer,
    connections: Callable[[ConnectionSettings], Awaitable[Client]],
    tls_files: TlsFiles,
    url: str,
    credentials: Callable[[TlsFiles], NatsCredentials] | None,
) -> None:
    server = await start_server(tls_config(tls_files))
    settings = ConnectionSettings.from_urls(
        url.format(host_port=f"{server.host}:{server.port}", ca=tls_files.ca_cert),
        credentials=credentials(tls_files) if credentials else None,
    )
    await assert_usable(await connections(settings))


async def test_tls_without_our_ca_is_refused(start_server: StartServer, tls_files: TlsFiles) -> None:
    server = await start_server(tls_config(tls_files))
    error = await refused(ConnectionSettings.from_urls(tls_url(server), connect_deadline=SHORT_DEADLINE))
    assert "certificate" in str(error).lower()


async def test_a_server_verifying_clients_accepts_our_client_certificate(
    start_server: StartServer,
    connections: Callable[[ConnectionSettings], Awaitable[Client]],
    tls_files: TlsFiles,
) -> None:
    server = await start_server(tls_config(tls_files, verify_clients=True))
    query = f"?tls_ca={tls_files.ca_cert}&tls_cert={tls_files.client_cert}&tls_key={tls_files.client_key}"
    await assert_usable(await connections(ConnectionSettings.from_urls(tls_url(server, query))))


async def test_a_server_verifying_clients_refuses_a_client_without_a_certificate(
    start_server: StartServer, tls_files: TlsFiles
) -> None:
    server = await start_server(tls_config(tls_files, verify_clients=True))
    settings = ConnectionSettings.from_urls(
        tls_url(server, f"?tls_ca={tls_files.ca_cert}"), connect_deadline=SHORT_DEADLINE
    )
    await refused(settings)




async def test_tls_url_with_our_ca_in_the_credentials_connects(
    start_server: StartServer,
    connections: Callable[[ConnectionSettings], Awaitable[Client]],
    tls_files: TlsFiles,
) -> None:
    server = await start_server(tls_config(tls_files))
    settings = ConnectionSettings.from_urls(
        tls_url(server),
        credentials=NatsCredentials(tls_ca_file=str(tls_files.ca_cert)),
        connect_deadline=SHORT_DEADLINE,
    )
    await assert_usable(await connections(settings))
