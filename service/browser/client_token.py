"""The widget's client token: a shop's backend vouches, for a few minutes, that this visitor is a client.

A publishable key is public (it sits in the shop's HTML), so it must never reveal a client's
history: a cart that names a `client_id` is answered only with a token for that client, made by
the shop's backend with the secret it shares with the service (WIDGET_TOKEN_SECRET), and sent by
the widget in the `X-Client-Token` header.

Format (version 1), three dot-separated parts, all ASCII:

    v1.<client_id as base64url, no padding>.<expiry, epoch seconds>.<signature>

where signature = base64url, no padding, of HMAC-SHA256(WIDGET_TOKEN_SECRET,
"v1.<client_id b64>.<expiry>") over the UTF-8 bytes of the first three parts. A token expiring
more than WIDGET_TOKEN_MAX_AGE_SECONDS ahead is refused too, so a leaked one cannot live long.
`make_client_token` is the reference implementation (any language with HMAC-SHA256 can do it).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time

VERSION = "v1"


class InvalidClientToken(ValueError):
    """The token is malformed, signed with another secret, expired, or for another client."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, signed: str) -> str:
    return _b64(hmac.new(secret.encode(), signed.encode("ascii"), hashlib.sha256).digest())


def make_client_token(secret: str, client_id: str, ttl_seconds: int = 600, now: float | None = None) -> str:
    """What the shop's backend puts in its page for a signed-in client (reference implementation)."""
    expiry = int((time.time() if now is None else now) + ttl_seconds)
    signed = f"{VERSION}.{_b64(client_id.encode())}.{expiry}"
    return f"{signed}.{_signature(secret, signed)}"


def verify_client_token(secret: str, token: str, client_id: str, max_age_seconds: int,
                        now: float | None = None) -> None:
    """Raise InvalidClientToken unless `token` is valid now for `client_id`."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != VERSION or not parts[2].isdigit():
        raise InvalidClientToken("not a v1 client token")
    signed = ".".join(parts[:3])
    try:
        signed.encode("ascii")
        expected = _signature(secret, signed)
        named = _unb64(parts[1]).decode("utf-8")
    except (UnicodeError, ValueError):
        raise InvalidClientToken("not a v1 client token") from None
    if not hmac.compare_digest(expected.encode(), parts[3].encode("ascii", "replace")):
        raise InvalidClientToken("bad signature")
    current = time.time() if now is None else now
    expiry = int(parts[2])
    if expiry < current:
        raise InvalidClientToken("expired")
    if expiry > current + max_age_seconds:
        raise InvalidClientToken(f"expires more than WIDGET_TOKEN_MAX_AGE_SECONDS ({max_age_seconds}) ahead")
    if not hmac.compare_digest(named.encode(), client_id.encode()):
        raise InvalidClientToken("made for another client")
