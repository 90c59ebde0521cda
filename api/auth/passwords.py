"""Password hashing with scrypt (stdlib), run off the event loop by callers.

OWASP's current parameters are the default: N = 2**17, r = 8, p = 1 (128 MiB and a few
hundred ms per hash; docs/benchmarks.md has the login latency measured here). A stored
hash keeps its own parameters, so hashes made at an older cost still verify; a login that
verifies one re-hashes the password at the current cost (`PasswordHasher.is_current`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os

DEFAULT_COST = 17
"""log2 of scrypt's N."""
MIN_COST, MAX_COST = 10, 20
_R, _P = 8, 1
_SALT_BYTES, _KEY_BYTES = 16, 32
_PREFIX = "scrypt"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _memory(n: int, r: int) -> int:
    # scrypt needs 128 * r * N bytes (and a little more); OpenSSL refuses above maxmem.
    return 2 * 128 * r * n + 1024 * 1024


class PasswordHasher:
    """scrypt at a cost (log2 N) with r = 8, p = 1; verifies hashes of any cost."""

    def __init__(self, cost: int = DEFAULT_COST) -> None:
        if not MIN_COST <= cost <= MAX_COST:
            raise ValueError(f"scrypt cost must be between {MIN_COST} and {MAX_COST}")
        self.cost = cost
        self._n = 2**cost
        self._decoy: str | None = None

    def hash(self, password: str) -> str:
        """``scrypt$N$r$p$salt$key`` for storage; never store the password itself."""
        salt = os.urandom(_SALT_BYTES)
        key = hashlib.scrypt(
            password.encode(),
            salt=salt,
            n=self._n,
            r=_R,
            p=_P,
            maxmem=_memory(self._n, _R),
            dklen=_KEY_BYTES,
        )
        return f"{_PREFIX}${self._n}${_R}${_P}${_b64(salt)}${_b64(key)}"

    def verify(self, password: str, stored: str) -> bool:
        """Constant-time check of ``password`` against a value from `hash` (any cost up to
        `MAX_COST`; anything else does not verify)."""
        try:
            prefix, n, r, p, salt_b64, key_b64 = stored.split("$")
            if prefix != _PREFIX or int(n) > 2**MAX_COST or int(r) > 64 or int(p) > 16:
                return False
            salt = base64.b64decode(salt_b64, validate=True)
            expected = base64.b64decode(key_b64, validate=True)  # no stray characters skipped
            if len(expected) < _KEY_BYTES // 2:
                return False
            key = hashlib.scrypt(
                password.encode(),
                salt=salt,
                n=int(n),
                r=int(r),
                p=int(p),
                maxmem=_memory(int(n), int(r)) * int(p),
                dklen=len(expected),
            )
        except ValueError:
            return False
        return hmac.compare_digest(key, expected)

    def is_current(self, stored: str) -> bool:
        """Whether `stored` was made with this hasher's parameters (else: re-hash it)."""
        return stored.split("$")[:4] == [_PREFIX, str(self._n), str(_R), str(_P)]

    def decoy_now(self) -> str:
        """A hash of a random password at this cost, checked against when the email is
        unknown, so that such a login costs the same time as a wrong password. Made on
        first use, off the event loop by `PasswordWork` (not at every start of the app)."""
        if self._decoy is None:
            self._decoy = self.hash(os.urandom(12).hex())
        return self._decoy


class PasswordWork:
    """Hashing and checking off the event loop, at most `parallel` at once: each scrypt at
    the default cost holds 128 MiB, so a burst of logins queues instead of taking the
    machine's memory."""

    def __init__(self, hasher: PasswordHasher, parallel: int = 2) -> None:
        self.hasher = hasher
        self._slots = asyncio.Semaphore(parallel)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hasher.hash, password)

    async def check(self, password: str, stored: str | None) -> bool:
        """Whether `password` matches `stored`; with no stored hash (an unknown email, an
        account without a password) it is checked against the decoy, for the same time,
        and never matches."""
        async with self._slots:
            if stored is None:
                await asyncio.to_thread(self._against_decoy, password)
                return False
            return await asyncio.to_thread(self.hasher.verify, password, stored)

    def _against_decoy(self, password: str) -> None:
        self.hasher.verify(password, self.hasher.decoy_now())
