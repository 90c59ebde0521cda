"""Password hashing with scrypt (stdlib), run off the event loop by callers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

# scrypt cost: 2**14 * 8 * 128 B = 16 MiB and ~40 ms per hash on this class of machine.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES, _KEY_BYTES = 16, 32
_PREFIX = "scrypt"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$key`` for storage; never store the password itself."""
    salt = os.urandom(_SALT_BYTES)
    key = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_KEY_BYTES)
    return f"{_PREFIX}${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a value from :func:`hash_password`."""
    try:
        prefix, n, r, p, salt_b64, key_b64 = stored.split("$")
        if prefix != _PREFIX:
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(key_b64)
        key = hashlib.scrypt(
            password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except ValueError:
        return False
    return hmac.compare_digest(key, expected)


# A hash of a random password, checked against when the email is unknown so that
# a login for an unknown account costs the same time as one with a wrong password.
DECOY_HASH = hash_password(os.urandom(12).hex())
