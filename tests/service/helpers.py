"""Keys, settings and small helpers shared by the service tests."""

from __future__ import annotations

from collections.abc import Callable

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
