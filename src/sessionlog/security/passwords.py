"""Password hashing with argon2 (pwdlib), the one place passwords are turned into stored hashes."""

from __future__ import annotations

from pwdlib import PasswordHash

_hasher = PasswordHash.recommended()

MIN_PASSWORD_LENGTH = 12

# A hash to verify against when the user does not exist, so a login for an unknown user takes as
# long as one with a wrong password and does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("sessionlog-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, stored_hash: str | None) -> bool:
    if stored_hash is None:
        _hasher.verify(password, _DUMMY_HASH)
        return False
    return _hasher.verify(password, stored_hash)
