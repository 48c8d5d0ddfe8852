"""The lookup API's Authorization header, RFC 6750: the Bearer scheme is required, case-insensitive."""
from __future__ import annotations

import pytest

from remarket.shell.auth import bearer_token, token_matches


@pytest.mark.parametrize("header", ["Bearer s3cret", "bearer s3cret", "BEARER s3cret", "BeArEr  s3cret",
                                    " Bearer s3cret "])
def test_the_bearer_scheme_is_case_insensitive(header):
    assert bearer_token(header) == "s3cret"
    assert token_matches(header, "s3cret")


@pytest.mark.parametrize("header", [None, "", "s3cret", "Basic s3cret", "Bearer", "Bearer ", "Bearers3cret",
                                    "Bearer s3 cret", "Token s3cret", "Bearer s3cret extra"])
def test_a_bare_token_another_scheme_or_a_malformed_credential_is_rejected(header):
    assert bearer_token(header) is None
    assert not token_matches(header, "s3cret")


def test_a_wrong_token_is_rejected_whatever_its_length():
    for wrong in ("s3cre", "s3cret0", "S3CRET", "x" * 10_000):
        assert not token_matches(f"Bearer {wrong}", "s3cret")


def test_b64token_characters_and_padding_are_accepted():
    token = "abc-._~+/XYZ09=="
    assert token_matches(f"Bearer {token}", token)


def test_an_empty_expected_token_never_matches():
    assert not token_matches("Bearer x", "")


def test_tokens_are_compared_in_constant_time(monkeypatch):
    import hmac

    from remarket.shell import auth

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    token_matches("Bearer short", "a-much-longer-expected-token")
    [(a, b)] = calls
    assert isinstance(a, bytes) and len(a) == len(b), "digests of equal length: no length leak"
