"""app.access: the token check shared by ingest and reads, the default read access, the hook's
loading, and when listening beyond loopback is worth a warning."""

from __future__ import annotations

import pytest

from app.access import (
    EVERY_STUDENT,
    BearerToken,
    ReadAccess,
    ReadGuard,
    TokenAccess,
    bearer_token,
    exposure_warnings,
    is_loopback,
    load_read_access,
)
from bridges.connection import Secret
from tables.errors import ConfigError
from tests.apps.tenants import Tenants


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER a b", "a b"), ("Basic abc", None), ("Bearer ", None), ("", None)],
)
def test_the_bearer_token_is_read_from_the_authorization_header(header: str, token: str | None) -> None:
    assert bearer_token({"Authorization": header} if header else {}) == token


def test_a_token_matches_itself_only() -> None:
    token = BearerToken(Secret("s3cr3t-\u00e9"))
    assert token.matches("s3cr3t-\u00e9")
    assert not token.matches("s3cr3t-e") and not token.matches("") and not token.matches("s3cr3t-\u00e9 ")


def test_the_default_access_reads_every_student_with_the_token_only() -> None:
    access: ReadAccess = TokenAccess(Secret("tok"))
    assert access.reader("tok") is EVERY_STUDENT and access.reader("nope") is None
    guard = ReadGuard(access)
    assert not guard.open and guard.reader(None) is None and guard.reader("") is None
    assert guard.reader("tok") is EVERY_STUDENT and not guard.refuses(EVERY_STUDENT, "s1")


def test_open_reads_need_no_token() -> None:
    guard = ReadGuard(None)
    assert guard.open and guard.reader(None) is EVERY_STUDENT and guard.reader("anything") is EVERY_STUDENT


def test_a_hook_is_asked_about_valid_ids_only() -> None:
    guard = ReadGuard(Tenants({"t": ["s1"]}))
    school = guard.reader("t")
    assert school is not None
    assert not guard.refuses(school, "s1") and guard.refuses(school, "s2")
    assert not guard.refuses(school, "s.*")  # not an id: the handler answers it (422)


def test_the_hook_is_loaded_from_its_setting() -> None:
    assert isinstance(load_read_access("tests.apps.tenants:access"), Tenants)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("tests.apps.nowhere:access", "importing tests.apps.nowhere failed: ModuleNotFoundError"),
        ("tests.apps.tenants:missing", "tests.apps.tenants has no missing"),
        ("tests.apps.tenants:Tenants", "must name an object with a reader(token) method (an instance, not a class)"),
        ("tests.apps.tenants:json", "must name an object with a reader(token) method"),
    ],
)
def test_a_hook_that_cannot_be_used_is_refused_naming_read_access(spec: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_read_access(spec)
    assert str(refused.value).startswith(f"Setting 'READ_ACCESS' has value {spec!r}: {problem}")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("web.internal", False)],  # noqa: S104 - data
)  # fmt: skip
def test_loopback_is_what_only_this_machine_reaches(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_listening_beyond_loopback_warns_for_each_open_door() -> None:
    assert exposure_warnings("127.0.0.1", ingest_open=True, reads_open=True) == []
    assert exposure_warnings("0.0.0.0", ingest_open=False, reads_open=False) == []  # noqa: S104
    ingest, reads = exposure_warnings("0.0.0.0", ingest_open=True, reads_open=True)  # noqa: S104
    assert ingest.startswith("HOST=0.0.0.0 is not a loopback address, and INGEST_TOKEN is not set")
    assert "neither READ_TOKEN nor READ_ACCESS is set" in reads
    (only,) = exposure_warnings("10.0.0.5", ingest_open=False, reads_open=True)
    assert "READ_TOKEN" in only
