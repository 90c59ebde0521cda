"""A cached JSON Web Key Set fetched over HTTPS (Auth0's tenant keys)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import jwt

log = logging.getLogger(__name__)


class JwksCache:
    """Public keys by ``kid``; refetched on an unknown ``kid`` at most every ``min_refresh`` s."""

    def __init__(self, url: str, *, min_refresh: float = 30.0, timeout: float = 5.0) -> None:
        self.url = url
        self._keys: dict[str, Any] = {}
        self._min_refresh = min_refresh
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> Any | None:
        """The public key for ``kid``, or ``None`` when the tenant does not publish it."""
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at >= self._min_refresh:
                await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(self.url) as response,
            ):
                response.raise_for_status()
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("could not fetch JWKS from %s: %s", self.url, exc)
            return
        keys: dict[str, Any] = {}
        for jwk in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or "kid" not in jwk:
                continue
            try:
                keys[str(jwk["kid"])] = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
            except (jwt.InvalidKeyError, ValueError, KeyError):
                log.warning("ignoring unusable JWK %s from %s", jwk.get("kid"), self.url)
        self._keys = keys
