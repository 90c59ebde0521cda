"""Throttling of sign-ups and logins, so that passwords cannot be guessed at speed and
accounts cannot be made by the thousand, without handing an attacker a way to lock a
real user out.

- Per client address, a token bucket for sign-ups and one for logins: a burst (a class
  behind one school NAT signing in at 9:00 fits in it), then a steady rate.
- Per (account, address), failed logins: the first few are free, then each one doubles
  the wait before the next attempt from that address for that account, up to a cap. A
  success clears it. An attacker's failures from another address never delay the real
  user, and an attacker at one address is down to one guess per cap.

Refusals are `RateLimited` (429 with ``Retry-After``). State is in memory, per server
process, bounded: entries idle longer than they matter are dropped, and at most
`api.rate_limits.MAX_TRACKED` keys are kept per table (the oldest go first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .. import rate_limits
from ..config import ThrottleSettings
from ..rate_limits import Buckets, RateLimited

TOO_MANY_ATTEMPTS = "Too many attempts, try again later"


@dataclass
class _Failures:
    count: int
    not_before: float
    at: float


class AuthThrottle:
    """Decides whether a sign-up or a login attempt may go ahead now."""

    def __init__(
        self, settings: ThrottleSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._clock = clock
        forget = settings.max_failure_delay + 3600.0
        self._signups: Buckets[str] = Buckets(
            settings.signup_burst, settings.signups_per_minute, forget_after=forget, clock=clock
        )
        self._logins: Buckets[str] = Buckets(
            settings.login_burst, settings.logins_per_minute, forget_after=forget, clock=clock
        )
        self._failures: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    def check_signup(self, address: str) -> None:
        """Raise `RateLimited` if `address` has signed up too much lately; else count it."""
        if self._settings.enabled:
            self._signups.spend(address, TOO_MANY_ATTEMPTS)

    def check_login(self, address: str, email: str) -> None:
        """Raise `RateLimited` if `address` may not try a login (for `email`) yet."""
        if not self._settings.enabled:
            return
        now = self._clock()
        failures = self._failures.get((email, address))
        if failures is not None and now < failures.not_before:
            raise RateLimited(failures.not_before - now, TOO_MANY_ATTEMPTS)
        self._logins.spend(address, TOO_MANY_ATTEMPTS)

    def login_failed(self, address: str, email: str) -> None:
        if not self._settings.enabled:
            return
        now, key = self._clock(), (email, address)
        failures = self._failures.pop(key, None) or _Failures(0, now, now)
        failures.count += 1
        failures.at = now
        beyond = failures.count - self._settings.free_failures
        if beyond > 0:
            delay = min(self._settings.max_failure_delay, 2.0 ** (beyond - 1))
            failures.not_before = now + delay
        self._keep(key, failures)

    def login_succeeded(self, address: str, email: str) -> None:
        self._failures.pop((email, address), None)

    def _keep(self, key: tuple[str, str], failures: _Failures) -> None:
        table = self._failures
        table[key] = failures  # most recently used last
        # Idle that long, failures are forgiven.
        forget_before = self._clock() - self._settings.max_failure_delay - 3600.0
        while table:
            oldest_key, oldest = next(iter(table.items()))
            if oldest.at >= forget_before and len(table) <= rate_limits.MAX_TRACKED:
                break
            del table[oldest_key]
