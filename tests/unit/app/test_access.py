"""app.access: the token check shared by ingest and reads."""

from __future__ import annotations

import pytest

from app.access import BearerToken, bearer_token
from bridges.connection import Secret


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
