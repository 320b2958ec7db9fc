"""Campaigns over the API: plan (write role), read, results against the control group."""

from __future__ import annotations

from service.helpers import ADMIN, READ, WRITE, ClientFactory, error, headers


def test_plan_read_and_results_with_their_error_codes(make_client: ClientFactory) -> None:
    client = make_client()
    body = {"budget": 40, "campaign_id": "api-spring"}
    assert error(client.post("/v1/campaigns/plan", json=body)) == (401, "missing_api_key")
    assert error(client.post("/v1/campaigns/plan", json=body, headers=headers(READ))) == \
        (403, "forbidden")
    bad = client.post("/v1/campaigns/plan", json={"budget": -7.77123}, headers=headers(WRITE))
    assert error(bad) == (422, "invalid_request") and "7.77123" not in bad.text

    planned = client.post("/v1/campaigns/plan", json=body, headers=headers(WRITE))
    assert planned.status_code == 201, planned.text
    doc = planned.json()
    assert doc["campaign_id"] == "api-spring" and doc["status"] == "planned"
    assert doc["expected_cost"] <= 40 + 1e-6
    assert doc["treated"] == sum(a["customers"] for a in doc["per_action"].values())
    assert error(client.post("/v1/campaigns/plan", json=body, headers=headers(ADMIN))) == \
        (409, "campaign_exists")

    assert client.get("/v1/campaigns/api-spring", headers=headers(READ)).json() == doc
    assert error(client.get("/v1/campaigns/nope", headers=headers(READ))) == \
        (404, "campaign_not_found")
    # Its window has not passed yet; a historical campaign can be measured.
    assert error(client.get("/v1/campaigns/api-spring/results", headers=headers(READ))) == \
        (409, "campaign_not_measurable")
    results = client.get("/v1/campaigns/cmp01-2025-03-02/results", headers=headers(READ))
    assert results.status_code == 200, results.text
    groups = results.json()["groups"]
    pooled = next(g for g in groups if g["action"] == "all" and g["tier"] == "all")
    assert pooled["n_treated"] > 0 and pooled["n_control"] > 0
    # This tiny shop's control group is below the minimum size for an interval: said, not faked.
    assert pooled["incremental_retention_ci"] is None and pooled["note"]
