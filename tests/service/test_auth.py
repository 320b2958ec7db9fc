"""401 without a valid key, 403 for a role too low, 429 past the rate, CORS closed by default."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.helpers import ADMIN, READ, WRITE, ClientFactory, error, headers


def test_missing_and_invalid_keys_get_401(reader: TestClient) -> None:
    assert error(reader.get("/v1/models")) == (401, "missing_api_key")
    bogus = reader.get("/v1/models", headers=headers("not-a-key-but-distinctive-7781"))
    assert error(bogus) == (401, "invalid_api_key")
    assert "distinctive-7781" not in bogus.text


@pytest.mark.parametrize(("method", "path", "key"), [
    ("post", "/v1/models/rollback", READ),
    ("post", "/v1/models/rollback", WRITE),
    ("post", "/v1/models/some-version/promote", WRITE),
    ("delete", "/v1/users/u0000001", WRITE),
    ("post", "/v1/events", READ),
])
def test_a_role_too_low_gets_403(reader: TestClient, method: str, path: str, key: str) -> None:
    body = {"events": [{"user_id": "u0000001", "ts": "2026-01-01T00:00:00Z", "type": "visit"}]}
    kwargs = {"json": body} if path == "/v1/events" else {}
    response = getattr(reader, method)(path, headers=headers(key), **kwargs)
    assert error(response) == (403, "forbidden")


def test_each_role_reaches_what_it_may(reader: TestClient) -> None:
    for key in (READ, WRITE, ADMIN):
        assert reader.get("/v1/models", headers=headers(key)).status_code == 200


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_per_key_answers_429_with_retry_after(make_client: ClientFactory) -> None:
    client = make_client(rate_per_second=0.5, rate_burst=3, warm_on_start=False)
    # The limiter the settings built, on a clock the test moves: however slowly the requests
    # run, no token comes back between them.
    clock = FakeClock()
    client.app.state.service.limiter.clock = clock
    codes = [client.get("/v1/models", headers=headers(READ)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/v1/models", headers=headers(READ))
    assert error(limited) == (429, "rate_limited")
    # The bucket is empty and refills at 0.5 a second: the next token is 2 s away.
    assert limited.headers["Retry-After"] == "2"
    # Another key has its own bucket.
    assert client.get("/v1/models", headers=headers(ADMIN)).status_code == 200
    clock.now += 1.0  # half a token: still refused, a second to go
    again = client.get("/v1/models", headers=headers(READ))
    assert error(again) == (429, "rate_limited") and again.headers["Retry-After"] == "1"
    clock.now += 1.0  # one token back, and only one
    codes = [client.get("/v1/models", headers=headers(READ)).status_code for _ in range(2)]
    assert codes == [200, 429]


def test_cors_is_closed_by_default_and_opens_for_listed_origins(
        reader: TestClient, make_client: ClientFactory) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    response = reader.options("/v1/models", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    open_client = make_client(cors_origins=("https://dash.example",), warm_on_start=False)
    allowed = open_client.get("/v1/models", headers={**headers(READ),
                                                     "Origin": "https://dash.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
    other = open_client.get("/v1/models", headers={**headers(READ),
                                                   "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
