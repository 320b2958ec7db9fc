"""GET /v1/users/{id}/risk and /v1/users/{id}: shapes, languages, lapsed customers, actions."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from churnguard.project import Project
from service.helpers import READ, ClientFactory, headers

USERS = [f"u{i:07d}" for i in range(300)]


def all_scores(client: TestClient) -> list[dict]:
    response = client.post("/v1/score", headers=headers(READ), json={"user_ids": USERS})
    return response.json()["scores"]


def test_risk_has_probability_tier_reasons_in_both_languages(reader: TestClient) -> None:
    rows = all_scores(reader)
    user = next(r["user_id"] for r in rows if r["status"] == "active" and r["reasons"])
    en = reader.get(f"/v1/users/{user}/risk", headers=headers(READ))
    zh = reader.get(f"/v1/users/{user}/risk?lang=zh", headers=headers(READ))
    assert en.status_code == zh.status_code == 200
    en, zh = en.json(), zh.json()
    assert set(en) == {"user_id", "as_of", "model_version", "status", "p_churn", "risk_tier",
                       "reasons", "recommended_action"}
    assert en["user_id"] == user and en["status"] == "active"
    assert 0 <= en["p_churn"] <= 1 and en["risk_tier"] in ("high", "medium", "low")
    assert en["p_churn"] == zh["p_churn"] and len(en["reasons"]) == len(zh["reasons"]) >= 1
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in s) for s in zh["reasons"])
    assert en["recommended_action"] is None  # no campaign planned yet


def test_a_lapsed_customer_has_no_probability_and_says_why(reader: TestClient) -> None:
    lapsed = [r for r in all_scores(reader) if r["status"] == "lapsed"]
    assert lapsed, "the shop should have customers without an order in the last year"
    answer = reader.get(f"/v1/users/{lapsed[0]['user_id']}/risk", headers=headers(READ)).json()
    assert (answer["status"], answer["p_churn"], answer["risk_tier"]) == ("lapsed", None, None)
    assert answer["reasons"] == ["No order in the last 365 days: by the churn definition this "
                                 "customer has already churned"]


def test_score_answers_in_the_order_asked_with_unknown_ids(reader: TestClient) -> None:
    body = {"user_ids": ["u0000002", "nobody-here", "u0000001", "u0000002"], "lang": "zh"}
    response = reader.post("/v1/score", headers=headers(READ), json=body)
    rows = response.json()["scores"]
    assert [r["user_id"] for r in rows] == ["u0000002", "nobody-here", "u0000001"]
    assert rows[1] == {"user_id": "nobody-here", "status": "unknown", "p_churn": None,
                       "risk_tier": None, "reasons": []}


def test_timeline_lists_events_scores_and_campaigns(make_client: ClientFactory,
                                                    project_dir) -> None:  # noqa: ANN001
    from churnguard.scoring import score_customers

    project = Project.load(project_dir)
    with project.open_store() as store:
        scored = score_customers(store, definition=project.config.churn,
                                 tiers=project.config.scoring)
        user = scored.scores["user_id"].iloc[0]
        (n_campaigns,) = store.con.execute("SELECT count(*) FROM campaigns WHERE user_id = ?",
                                           [user]).fetchall()[0]
    client = make_client(warm_on_start=False, timeline_events=5)
    timeline = client.get(f"/v1/users/{user}", headers=headers(READ)).json()
    assert timeline["user_id"] == user and timeline["events_total"] > 5
    assert len(timeline["events"]) == 5
    stamps = [e["ts"] for e in timeline["events"]]
    assert stamps == sorted(stamps, reverse=True)
    assert [s["as_of"] for s in timeline["scores"]] == [f"{scored.as_of:%Y-%m-%dT%H:%M:%S}Z"]
    assert len([c for c in timeline["campaigns"] if c["source"] == "history"]) == n_campaigns
    more = client.get(f"/v1/users/{user}?limit=50", headers=headers(READ)).json()
    assert len(more["events"]) == min(50, timeline["events_total"])


def test_the_newest_plan_gives_the_recommended_action_but_not_to_controls(
        make_client: ClientFactory, project_dir) -> None:  # noqa: ANN001
    project = Project.load(project_dir)
    now = dt.datetime(2026, 2, 25)
    with project.open_store() as store:
        for campaign, at in (("c-old", now - dt.timedelta(days=40)), ("c-new", now)):
            store.con.execute("INSERT INTO plans VALUES (?, ?, ?, 100, 'planned', '{}', '{}')",
                              [campaign, at, at])
        store.con.execute(
            "INSERT INTO plan_rows (campaign_id, user_id, action, is_control, channel, "
            "message_en, message_zh) VALUES "
            "('c-old', 'u0000001', 'coupon_20', false, 'email', 'old', '旧'),"
            "('c-new', 'u0000001', 'coupon_10', false, 'email', 'Hi, 10% off', '您好，九折'),"
            "('c-new', 'u0000002', 'coupon_10', true, 'email', 'Hi', '您好')")
    client = make_client(warm_on_start=False)
    action = client.get("/v1/users/u0000001/risk?lang=zh", headers=headers(READ)).json()
    assert action["recommended_action"] == {"campaign_id": "c-new", "action": "coupon_10",
                                            "channel": "email", "message": "您好，九折"}
    control = client.get("/v1/users/u0000002/risk", headers=headers(READ)).json()
    assert control["recommended_action"] is None
    timeline = client.get("/v1/users/u0000001", headers=headers(READ)).json()
    planned = [c for c in timeline["campaigns"] if c["source"] == "plan"]
    assert [c["campaign_id"] for c in planned] == ["c-old", "c-new"]
