"""POST /v1/events: stored like file ingestion, idempotent, and counted by the next risk answer."""

from __future__ import annotations

from service.helpers import READ, WRITE, ClientFactory, headers

USERS = [f"u{i:07d}" for i in range(300)]


def scores(client, ids=USERS) -> dict[str, dict]:  # noqa: ANN001
    response = client.post("/v1/score", headers=headers(READ), json={"user_ids": ids})
    assert response.status_code == 200
    return {row["user_id"]: row for row in response.json()["scores"]}


def test_a_batch_is_stored_once_and_again_adds_nothing(make_client: ClientFactory) -> None:
    client = make_client(warm_on_start=False)
    batch = {"events": [
        {"user_id": "new-customer-1", "ts": "2026-02-20T10:00:00Z", "type": "order",
         "amount": 25.5, "event_id": "api-e1"},
        {"user_id": "new-customer-1", "ts": "2026-02-20T10:05:00+01:00", "type": "Review",
         "rating": 2, "text": "call me on +44 20 7946 0958"},
    ]}
    first = client.post("/v1/events", headers=headers(WRITE), json=batch)
    assert first.status_code == 200
    assert first.json() | {"batch_id": None} == {"batch_id": None, "received": 2, "added": 2,
                                                 "duplicate": 0}
    again = client.post("/v1/events", headers=headers(WRITE), json=batch)
    assert again.json() == {"batch_id": None, "received": 2, "added": 0, "duplicate": 2}
    timeline = client.get("/v1/users/new-customer-1", headers=headers(READ)).json()
    assert timeline["events_total"] == 2
    newest, oldest = timeline["events"]
    # Normalised like file ingestion: UTC, lower-case type; free text is not shown at all.
    assert (newest["ts"], newest["type"]) == ("2026-02-20T10:00:00Z", "order")
    assert (oldest["ts"], oldest["type"], oldest["rating"]) == ("2026-02-20T09:05:00Z", "review", 2)
    assert "text" not in oldest


def test_an_event_posted_now_changes_the_next_risk_answer(make_client: ClientFactory) -> None:
    client = make_client()
    before = scores(client)
    active = {u: r for u, r in before.items() if r["status"] == "active"}
    user = max(active, key=lambda u: (active[u]["p_churn"], u))
    risk_before = client.get(f"/v1/users/{user}/risk", headers=headers(READ)).json()
    assert risk_before["p_churn"] == active[user]["p_churn"]
    timeline = client.get(f"/v1/users/{user}", headers=headers(READ)).json()
    last = max(e["ts"] for e in timeline["events"])
    orders = [{"user_id": user, "ts": f"2026-02-25T0{h}:00:00Z", "type": t, "amount": 40.0}
              for h in range(3) for t in ("visit", "order")]
    assert client.post("/v1/events", headers=headers(WRITE),
                       json={"events": orders}).json()["added"] == 6
    risk_after = client.get(f"/v1/users/{user}/risk", headers=headers(READ)).json()
    assert risk_after["as_of"] > risk_before["as_of"] and risk_after["as_of"] > last
    assert risk_after["p_churn"] < risk_before["p_churn"]
    assert risk_after["reasons"] != risk_before["reasons"]
    # Everyone else keeps the answer computed at the start.
    other = next(u for u in active if u != user)
    assert client.get(f"/v1/users/{other}/risk", headers=headers(READ)).json()["p_churn"] == \
        active[other]["p_churn"]
