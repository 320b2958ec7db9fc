"""churnguard.realtime (the library under the risk endpoint): one customer scored from a copy of
their own events gets exactly what scoring the whole population gives them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from churnguard.project import Project
from churnguard.realtime import CustomerScratch, score_population_at
from churnguard.registry import get_model_version, list_models, load_model
from churnguard.scoring import champion, score_customers
from churnguard.snapshots import build_snapshot

from service.helpers import READ, WRITE, ClientFactory, headers


def test_scratch_scoring_equals_population_scoring(shared_project: Path) -> None:
    project = Project.load(shared_project)
    definition, tiers = project.config.churn, project.config.scoring
    with project.open_store(read_only=True) as store:
        (last,) = store.con.execute("SELECT max(ts) FROM events").fetchall()[0]
        as_of = last + dt.timedelta(hours=5)
        everyone = score_population_at(store, definition=definition, tiers=tiers, as_of=as_of)
        version, model = champion(store)
        features = get_model_version(store, version).features
        scratch = CustomerScratch(store)
        try:
            active = sorted(everyone.scored)[:8]
            lapsed = sorted(everyone.known - set(everyone.scored))[:2]
            one_by_one = {}
            for user in [*active, *lapsed, "not-a-customer"]:
                one_by_one |= scratch.score(store, [user], definition=definition, tiers=tiers,
                                            as_of=as_of, version=version, model=model,
                                            features=features)
            together = scratch.score(store, [*active, *lapsed], definition=definition,
                                     tiers=tiers, as_of=as_of, version=version, model=model,
                                     features=features)
        finally:
            scratch.close()
    assert "not-a-customer" not in one_by_one
    for user in active:
        expected = everyone.scored[user]
        for got in (one_by_one[user], together[user]):
            assert got.status == "active"
            assert abs(got.p_churn - expected.p_churn) < 1e-12
            assert got.risk_tier == expected.risk_tier and got.reasons == expected.reasons
    for user in lapsed:
        assert one_by_one[user].status == "lapsed" and one_by_one[user].p_churn is None
        assert one_by_one[user] == everyone.get(user, definition=definition)


def test_population_scoring_at_a_midnight_matches_batch_scoring(shared_project: Path) -> None:
    project = Project.load(shared_project)
    with project.open_store(read_only=True) as store:
        batch = score_customers(store, definition=project.config.churn,
                                tiers=project.config.scoring, save=False)
        now = score_population_at(store, definition=project.config.churn,
                                  tiers=project.config.scoring, as_of=batch.as_of)
    assert set(now.scored) == set(batch.scores["user_id"])
    for row in batch.scores.itertuples():
        risk = now.scored[row.user_id]
        assert abs(risk.p_churn - row.p_churn) < 1e-12 and risk.risk_tier == row.risk_tier
        assert list(risk.reasons["en"]) == [r for r in (row.reason_1, row.reason_2,
                                                        row.reason_3) if r]


def test_one_pass_gives_what_the_three_model_calls_give(shared_project: Path) -> None:
    """ChurnModel.predict_explained (one design matrix per call, what the scratch store scores
    with) returns exactly predict_proba, explain and explanation_values, for the GBDT override
    and for the default of a model without contributions."""
    project = Project.load(shared_project)
    with project.open_store(read_only=True) as store:
        (last,) = store.con.execute("SELECT max(ts) FROM events").fetchall()[0]
        gbdt_version, gbdt = champion(store)
        recency_version = next(m.version for m in list_models(store) if m.version != gbdt_version)
        recency = load_model(store, recency_version)
        snapshot = build_snapshot(store, definition=project.config.churn, cutoffs=[last],
                                  features=get_model_version(store, gbdt_version).features,
                                  with_labels=False)
    assert len(snapshot) > 20
    p, contributions, values = gbdt.predict_explained(snapshot)
    assert np.array_equal(p, gbdt.predict_proba(snapshot))
    pd.testing.assert_frame_equal(contributions, gbdt.explain(snapshot), check_exact=True)
    pd.testing.assert_frame_equal(values, gbdt.explanation_values(snapshot), check_exact=True)
    p, contributions, values = recency.predict_explained(snapshot)
    assert np.array_equal(p, recency.predict_proba(snapshot))
    assert contributions is None and values is None


def test_the_answer_after_a_posted_event_equals_a_batch_score_of_the_same_data(
        make_client: ClientFactory, project_dir: Path) -> None:
    """The first risk answer after POST /v1/events (scored on the spot from the customer's own
    events, one model pass) has the probability, tier and reasons that batch scoring
    (``churnguard score``: the whole store, predict_proba and explain apart) gives at the same
    instant."""
    client = make_client()
    user = "u0000007"
    events = [{"user_id": user, "ts": "2026-02-25T10:00:00Z", "type": t, "amount": 12.5}
              for t in ("visit", "order")]
    assert client.post("/v1/events", headers=headers(WRITE),
                       json={"events": events}).json()["added"] == 2
    answer = client.get(f"/v1/users/{user}/risk", headers=headers(READ)).json()
    client.__exit__(None, None, None)  # release the store
    assert answer["status"] == "active"
    as_of = dt.datetime.fromisoformat(answer["as_of"].replace("Z", "+00:00")).replace(tzinfo=None)
    project = Project.load(project_dir)
    with project.open_store(read_only=True) as store:
        batch = score_customers(store, definition=project.config.churn,
                                tiers=project.config.scoring, as_of=as_of, save=False)
    assert batch.as_of == as_of
    (expected,) = batch.scores[batch.scores["user_id"] == user].itertuples()
    assert abs(answer["p_churn"] - expected.p_churn) < 1e-12
    assert answer["risk_tier"] == expected.risk_tier
    assert answer["reasons"] == [r for r in (expected.reason_1, expected.reason_2,
                                             expected.reason_3) if r]
