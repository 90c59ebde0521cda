"""``scripts.support.redis_server.RedisProcess`` for the tests: a test that needs it is
skipped, saying why, where ``redis-server`` is not installed."""

from __future__ import annotations

import pytest

from scripts.support.redis_server import RedisMissing
from scripts.support.redis_server import RedisProcess as _RedisProcess


class RedisProcess(_RedisProcess):
    """A real ``redis-server``; `start` skips the test if there is none."""

    def start(self, timeout: float = 10.0) -> None:
        try:
            super().start(timeout)
        except RedisMissing as missing:
            pytest.skip(str(missing))
