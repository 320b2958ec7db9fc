"""GET and POST /v1/users/{id}/tickets/{ticket}/assist and GET /v1/assist/usage."""

from __future__ import annotations

from fastapi.testclient import TestClient

from churnguard import assistant
from service.helpers import READ, WRITE, ClientFactory, error, headers


def _answered_ticket(client: TestClient) -> tuple[str, str, str]:
    """(user, open ticket the assistant answers, a resolved ticket of someone) in the shop."""
    service = client.app.state.service
    config = service.project.config
    with service.pool.reading() as store:
        resolved = assistant.resolved_tickets(store)[0].ticket_id
        users = [r[0] for r in store.con.execute(
            "SELECT DISTINCT user_id FROM events WHERE type = 'support_ticket' ORDER BY 1"
        ).fetchall()]
        for user in users:
            for ticket in assistant.open_tickets(store, user):
                help_ = assistant.assist(store, user, ticket.ticket_id, config=config.assistant,
                                         actions=config.intervene.actions)
                if not help_.abstained and help_.recommendation is not None:
                    return user, ticket.ticket_id, resolved
    raise AssertionError("the service shop has no open ticket the assistant answers")


def test_assist_answers_an_open_ticket_and_logs_the_agents_decision(
        make_client: ClientFactory) -> None:
    client = make_client()
    user, ticket, resolved = _answered_ticket(client)
    url = f"/v1/users/{user}/tickets/{ticket}/assist"
    answer = client.get(url, headers=headers(READ))
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"user_id", "ticket_id", "opened_at", "text", "lang", "topic",
                         "risk_tier", "p_churn", "at_risk", "threshold", "top_similarity",
                         "abstained", "similar", "recommendation", "alternatives"}
    assert (body["user_id"], body["ticket_id"], body["abstained"]) == (user, ticket, False)
    # answered: the nearest resolved ticket text reaches the threshold; the 3 shown are ranked
    # by the blend of text and reply (docs/assistant.md), none nearer by text than that best
    assert len(body["similar"]) == 3 and body["top_similarity"] >= body["threshold"]
    sims = [s["similarity"] for s in body["similar"]]
    assert sims == sorted(sims, reverse=True)
    assert all(s["text_similarity"] <= body["top_similarity"] + 1e-9 for s in body["similar"])
    assert all(s["reply"] and s["text"] for s in body["similar"])
    rec = body["recommendation"]
    # a reader may ask, only a writer may log
    assert error(client.post(url, headers=headers(READ), json={"decision": "rejected"})) == \
        (403, "forbidden")
    logged = client.post(url, headers=headers(WRITE),
                         json={"decision": "accepted", "template_id": rec["template_id"],
                               "agent": "ana"})
    assert logged.status_code == 201
    assert logged.json()["sent_text"] == rec["text"] and logged.json()["lang"] == body["lang"]
    assert error(client.post(url, headers=headers(WRITE), json={"decision": "accepted"})) == \
        (422, "invalid_request")
    assert client.post(url, headers=headers(WRITE), json={
        "decision": "edited", "text": "Sorry! Checking now."}).status_code == 201
    usage = client.get("/v1/assist/usage", headers=headers(READ)).json()
    assert usage["decisions"] == 2
    assert usage["by_decision"] == {"accepted": 1, "edited": 1, "rejected": 0}
    assert usage["by_lang"] == {body["lang"]: {"accepted": 1, "edited": 1, "rejected": 0}}
    assert usage["acceptance_rate"] == 0.5
    # a resolved ticket, or one of another customer, is no open ticket of this customer
    assert error(client.get(f"/v1/users/{user}/tickets/{resolved}/assist",
                            headers=headers(READ))) == (404, "ticket_not_found")
    assert error(client.get(f"/v1/users/nobody/tickets/{ticket}/assist",
                            headers=headers(READ))) == (404, "user_not_found")
