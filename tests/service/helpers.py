"""Keys, settings and small helpers shared by the service tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from fastapi.testclient import TestClient
from httpx import Response

from churnguard.service import ServiceSettings

ADMIN = "admin-key-0123456789abcdef"
WRITE = "write-key-0123456789abcdef"
READ = "read-key-0123456789abcdef"
KEYS = {ADMIN: "admin", WRITE: "write", READ: "read"}


def headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def settings(**overrides: object) -> ServiceSettings:
    """Production settings with three keys; the clock is the data's (the shop is in the past)."""
    values: dict[str, object] = {"env": "production", "api_keys": KEYS, "clock": "data",
                                 "rate_per_second": 10_000.0, "rate_burst": 10_000,
                                 "refresh_seconds": 0}
    values.update(overrides)
    return ServiceSettings(**values)


ClientFactory = Callable[..., TestClient]


def error(response: Response) -> tuple[int, str]:
    """(status, stable error code) of an error answer."""
    return response.status_code, response.json()["error"]["code"]


@contextlib.contextmanager
def serving_in_thread(app: object, name: str) -> Iterator[str]:
    """``app`` served by uvicorn on a free local port in a daemon thread; yields its base URL and
    stops the server on exit."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
