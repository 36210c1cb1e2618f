"""API keys for stations and integrators: random, shown once, stored only as a hash, revocable.

A key is ``slk_<id>_<secret>``: the id finds the row without scanning, the 256-bit secret is checked
against its SHA-256 hash in constant time. A fast hash is right here (unlike for passwords) because
the secret is random and long, so there is nothing to guess.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "slk_"


def new_key_secret() -> str:
    return secrets.token_urlsafe(32)


def format_key(key_id: int, secret: str) -> str:
    return f"{PREFIX}{key_id}_{secret}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(presented: str) -> tuple[int, str] | None:
    """The id and secret of a key in our format, or None for anything else (answered as 401).

    The id must be ASCII digits: ``str.isdigit`` also accepts superscripts and other scripts' digits,
    which ``int`` then refuses or reads as a different number.
    """
    if not presented.startswith(PREFIX):
        return None
    key_id, _, secret = presented[len(PREFIX) :].partition("_")
    if not (key_id.isascii() and key_id.isdigit()) or not secret or len(key_id) > 9:
        return None
    return int(key_id), secret


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
