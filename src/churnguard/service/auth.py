"""API keys with roles (read < write < admin), per-key rate limiting, and a limit on failed
authentications per client address.

Keys travel in the ``X-API-Key`` header. Each route names the least role it needs:
:func:`require` checks the key, takes a token from the key's bucket, then checks the role.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from churnguard.service.errors import ApiError
from churnguard.service.settings import Role

log = logging.getLogger("churnguard.service")
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

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token, without taking one (0.0: it has one now)."""
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

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


def key_bucket(key: str) -> str:
    """The rate limiter's name for an API key: a digest, never the key itself. The API and the
    dashboard's sessions of one key share it, so a key's limit does not grow with its sessions."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _too_many(wait: float, message: str) -> ApiError:
    return ApiError("rate_limited", message, headers={"Retry-After": str(max(1, math.ceil(wait)))})


def _refuse(request: Request, code: str, message: str) -> ApiError:
    """A failed authentication: counted against the client's address (past its budget every
    request of that client answers 429) and written to the audit log without the key."""
    service = request.app.state.service
    client = request.client.host if request.client else "unknown"
    route = getattr(request.scope.get("route"), "path", request.scope.get("path", ""))
    log.warning("authentication failed (%s) from %s on %s %s", code, client, request.method,
                route)
    service.auth_failures.take("client:" + client)
    return ApiError(code, message)


def require(role: Role) -> Callable[..., Role]:
    """A dependency: the request needs a valid key with at least ``role``; returns its role.

    A client whose recent authentications failed too often (settings
    ``auth_failures_burst``/``auth_failures_per_minute``) is answered 429 before its key is
    looked at, so keys cannot be guessed at speed."""

    async def check(request: Request, key: str | None = Security(_header)) -> Role:
        service = request.app.state.service
        client = request.client.host if request.client else "unknown"
        blocked = service.auth_failures.wait("client:" + client)
        if blocked > 0:
            raise _too_many(blocked, "too many failed authentications from this address; "
                                     "retry later")
        if not key:
            raise _refuse(request, "missing_api_key",
                          f"send an API key in the {API_KEY_HEADER} header")
        found = service.settings.role_of(key)
        if found is None:
            raise _refuse(request, "invalid_api_key", "the API key is not valid")
        wait = service.limiter.take(key_bucket(key))
        if wait > 0:
            raise _too_many(wait, "too many requests for this API key; retry later")
        if _RANK[found] < _RANK[role]:
            raise ApiError("forbidden", f"this needs an API key with the {role} role")
        return found

    return check
