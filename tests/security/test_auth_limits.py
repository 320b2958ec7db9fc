"""Issue 16, item 7: API keys cannot be guessed at speed, failed attempts are audited without the
key, and a key's rate limit does not grow with the dashboard sessions it opens.

The clocks of the limiters are the test's own, so nothing here depends on how fast it runs."""

from __future__ import annotations

import logging

import pytest

from service.conftest import make_client, project_dir, template_project  # noqa: F401
from service.helpers import READ, ClientFactory, error, headers

GUESS = "guess-0123456789abcdefghij"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def client(make_client: ClientFactory):  # noqa: F811
    client = make_client(warm_on_start=False, auth_failures_burst=3,
                         auth_failures_per_minute=6.0)
    clock = Clock()
    client.app.state.service.auth_failures.clock = clock
    client.app.state.service.limiter.clock = clock
    return client, clock


def test_guessing_keys_is_limited_per_client_and_audited(client, caplog) -> None:
    client, clock = client
    with caplog.at_level(logging.WARNING, logger="churnguard.service"):
        answers = [error(client.get("/v1/models", headers=headers(f"{GUESS}{k}")))
                   for k in range(3)]
        assert answers == [(401, "invalid_api_key")] * 3
        # The budget is spent: the next request answers 429, whatever key it carries (a
        # guesser cannot tell a right guess from a wrong one), with the wait in Retry-After.
        for key in (f"{GUESS}x", READ):
            limited = client.get("/v1/models", headers=headers(key))
            assert error(limited) == (429, "rate_limited")
            assert limited.headers["retry-after"] == "10"  # 6 a minute: one every 10 s
        assert error(client.get("/v1/models")) == (429, "rate_limited")  # no key at all

    clock.now += 10  # one failure's worth refilled
    assert client.get("/v1/models", headers=headers(READ)).status_code == 200

    audit = [r.getMessage() for r in caplog.records if "authentication failed" in r.getMessage()]
    assert len(audit) == 3
    assert all("invalid_api_key" in line and "/v1/models" in line and "testclient" in line
               for line in audit)
    assert not any(GUESS in r.getMessage() for r in caplog.records)  # never the key itself


def test_a_valid_key_is_not_held_back_by_others_failures(make_client: ClientFactory) -> None:  # noqa: F811
    client = make_client(warm_on_start=False, auth_failures_burst=1)
    assert client.get("/v1/models", headers=headers(READ)).status_code == 200
    assert client.get("/v1/models", headers=headers(READ)).status_code == 200  # successes are free


def test_a_keys_sessions_share_its_rate_limit(make_client: ClientFactory) -> None:  # noqa: F811
    client = make_client(warm_on_start=False, rate_burst=4, rate_per_second=0.001)
    clock = Clock()
    client.app.state.service.limiter.clock = clock
    cookies = []
    for _ in range(3):  # three browser sessions of one key: 3 of the key's 4 tokens
        started = client.post("/dashboard/session", headers=headers(READ))
        assert started.status_code == 200
        cookies.append(started.cookies["churnguard_session"])
        client.cookies.clear()
    statuses = []
    for cookie in cookies:  # one token left for all three sessions together, not 4 each
        client.cookies.set("churnguard_session", cookie)
        statuses.append(client.get("/").status_code)
        client.cookies.clear()
    assert statuses == [200, 429, 429]
    assert error(client.get("/v1/models", headers=headers(READ))) == (429, "rate_limited")
