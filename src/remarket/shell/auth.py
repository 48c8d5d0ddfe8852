"""Bearer tokens for the lookup API (RFC 6750 section 2.1). Pure: no web framework.

`Authorization: Bearer <token>`: the scheme is required and case-insensitive; the token is one
b64token (no spaces). Tokens are compared in constant time over fixed-length digests, so
neither the content nor the length of the expected token shows in the timing.
"""
from __future__ import annotations

import hashlib
import hmac
import re

_CREDENTIALS = re.compile(r"\s*(?P<scheme>[!#$%&'*+.^_`|~0-9A-Za-z-]+) +(?P<token>[A-Za-z0-9._~+/-]+=*)\s*")
CHALLENGE = 'Bearer realm="remarket"'
INVALID_TOKEN_CHALLENGE = 'Bearer realm="remarket", error="invalid_token"'


def bearer_token(authorization: str | None) -> str | None:
    """The token of a Bearer credential, or None (absent, another scheme, no scheme, malformed)."""
    if not authorization:
        return None
    match = _CREDENTIALS.fullmatch(authorization)
    if match is None or match["scheme"].lower() != "bearer":
        return None
    return match["token"]


def token_matches(authorization: str | None, expected: str) -> bool:
    supplied = bearer_token(authorization)
    if supplied is None or not expected:
        return False
    return hmac.compare_digest(_digest(supplied), _digest(expected))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
