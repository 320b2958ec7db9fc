"""API keys with roles (read < write < admin) and per-key rate limiting.

Keys travel in the ``X-API-Key`` header. Each route names the least role it needs:
:func:`require` checks the key, takes a token from the key's bucket, then checks the role.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from churnguard.service.errors import ApiError
from churnguard.service.settings import Role

API_KEY_HEADER = "X-API-Key"
_RANK = {"read": 0, "write": 1, "admin": 2}
_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                       description="An API key; its role (read, write or admin) decides what "
                                   "it may do")


class TokenBucket:
    """Per-key token buckets: ``rate`` tokens a second up to ``burst``; one per request.

    >>> bucket = TokenBucket(rate=1.0, burst=2, clock=lambda: 0.0)
    >>> [bucket.take("k") for _ in range(3)]
    [0.0, 0.0, 1.0]
    """

    def __init__(self, *, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 when a token was taken, else the seconds until one is available."""
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


def _bucket_name(key: str) -> str:
    # The limiter keeps a digest, not the key itself.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def require(role: Role) -> Callable[..., Role]:
    """A dependency: the request needs a valid key with at least ``role``; returns its role."""

    async def check(request: Request, key: str | None = Security(_header)) -> Role:
        service = request.app.state.service
        if not key:
            raise ApiError("missing_api_key", f"send an API key in the {API_KEY_HEADER} header")
        found = service.settings.role_of(key)
        if found is None:
            raise ApiError("invalid_api_key", "the API key is not valid")
        wait = service.limiter.take(_bucket_name(key))
        if wait > 0:
            raise ApiError("rate_limited", "too many requests for this API key; retry later",
                           headers={"Retry-After": str(max(1, math.ceil(wait)))})
        if _RANK[found] < _RANK[role]:
            raise ApiError("forbidden", f"this needs an API key with the {role} role")
        return found

    return check
