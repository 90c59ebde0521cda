"""Token buckets by key (a client address, an account), bounded in memory, and the 429
they answer with. Used by the sign-up and login throttle (`api.auth.throttle`) and for the
routes that cost the server real work (`HeavyRoutes`)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import TooManyRequests

MAX_TRACKED = 100_000
"""Keys a table remembers at most (the least recently used go first)."""
TOO_MANY_REQUESTS = "Too many requests, try again later"

K = TypeVar("K")


class RateLimited(TooManyRequests):
    """429: try again in `retry_after` seconds (the ``Retry-After`` header, rounded up)."""

    def __init__(self, retry_after: float, message: str = TOO_MANY_REQUESTS) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass
class _Bucket:
    tokens: float
    at: float


class Buckets(Generic[K]):
    """One token bucket per key: `burst` at once, then `per_minute`. A key idle for longer
    than `forget_after` seconds is forgotten (its bucket would be full again anyway)."""

    def __init__(
        self,
        burst: int,
        per_minute: float,
        *,
        forget_after: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = float(burst)
        self._per_second = per_minute / 60.0
        self._forget_after = max(forget_after, burst / self._per_second)
        self._clock = clock
        self._table: OrderedDict[K, _Bucket] = OrderedDict()

    def spend(self, key: K, message: str = TOO_MANY_REQUESTS) -> None:
        """Take a token for `key`, or raise `RateLimited` saying when one will be there."""
        now = self._clock()
        bucket = self._table.pop(key, None) or _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._per_second)
        bucket.at = now
        self._table[key] = bucket  # most recently used last
        self._prune(now)
        if bucket.tokens < 1.0:
            raise RateLimited((1.0 - bucket.tokens) / self._per_second, message)
        bucket.tokens -= 1.0

    def __len__(self) -> int:
        return len(self._table)

    def _prune(self, now: float) -> None:
        while self._table:
            key, oldest = next(iter(self._table.items()))
            if oldest.at >= now - self._forget_after and len(self._table) <= MAX_TRACKED:
                return
            del self._table[key]


class HeavyRoutes:
    """Per account, the routes that cost the server real work: a session's CSV, recording
    downloads (a composed file may be made on the way), starting a recording."""

    def __init__(
        self, burst: int, per_minute: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._buckets: Buckets[str] = Buckets(burst, per_minute, clock=clock)

    def check(self, user_id: str) -> None:
        self._buckets.spend(user_id)
