"""Password hashes: argon2id through argon2-cffi (the reference implementation's binding).

argon2id is memory-hard, so a stolen table is slow to attack on GPUs, and the
library's defaults follow RFC 9106's recommended profile. A sign-in by an unknown
user still spends one verification, so response times do not reveal which names exist.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not a password anyone has")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when the hash was made with weaker parameters than today's defaults."""
    return _hasher.check_needs_rehash(stored)
