"""Who may read the dashboard: a signed-in browser session, or nobody needs to sign in.

Browsers cannot put an API key in a header when they follow a link, so reading the pages works
like this: the sign-in page sends the key once, in the ``X-API-Key`` header, to
``POST /dashboard/session``; the service's own key check (role ``read`` or more) accepts it and
the answer sets a cookie holding a random session token (``HttpOnly``, ``SameSite=Strict``,
``Secure`` over HTTPS). The cookie never holds the key, and it opens only the read-only pages and
the planner preview: committing a campaign plan needs a ``write`` key in the header of that very
request, whatever the cookie says.

In development with no keys configured (the service then accepts only the development key) the
pages need no sign-in.

Requests through a session count against the rate limit of the key that opened it (``bucket``):
a key's limit does not grow with the number of sessions it opens.

>>> sessions = Sessions(ttl_seconds=60, clock=lambda: 0.0)
>>> token = sessions.open("read", bucket="key-digest")
>>> sessions.role(token), sessions.role("forged"), sessions.bucket(token)
('read', None, 'key-digest')
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable

from churnguard.service.settings import Role, ServiceSettings

COOKIE = "churnguard_session"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000


def open_reads(settings: ServiceSettings) -> bool:
    """Pages need no sign-in: development, and no key of the operator's own configured."""
    return settings.env == "development" and not settings.api_keys


class Sessions:
    """Session tokens in memory (a restart signs everyone out), each with a role and an end."""

    def __init__(self, *, ttl_seconds: float = SESSION_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.clock = ttl_seconds, clock
        self._lock = threading.Lock()
        self._by_digest: dict[str, tuple[Role, float]] = {}
        self._buckets: dict[str, str] = {}  # session digest -> its key's rate-limit bucket

    @staticmethod
    def _digest(token: str) -> str:
        # Kept by digest: a memory dump does not hand out live tokens.
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    def open(self, role: Role, *, bucket: str) -> str:
        """A new session of ``role``, counted against the rate-limit ``bucket`` of its key."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            if len(self._by_digest) >= MAX_SESSIONS:
                self._by_digest = {d: v for d, v in self._by_digest.items() if v[1] > now}
                while len(self._by_digest) >= MAX_SESSIONS:
                    self._by_digest.pop(next(iter(self._by_digest)))
            self._by_digest[self._digest(token)] = (role, now + self.ttl)
            self._buckets = {d: b for d, b in self._buckets.items() if d in self._by_digest}
            self._buckets[self._digest(token)] = bucket
        return token

    def role(self, token: str | None) -> Role | None:
        if not token:
            return None
        digest = self._digest(token)
        with self._lock:
            found = self._by_digest.get(digest)
            if found is None:
                return None
            if found[1] <= self.clock():
                del self._by_digest[digest]
                return None
            return found[0]

    def close(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._by_digest.pop(self._digest(token), None)

    def bucket(self, token: str) -> str:
        """The rate limiter's name for this session: its key's (never the token itself)."""
        digest = self._digest(token)
        with self._lock:
            return self._buckets.get(digest, "dashboard:" + digest)
