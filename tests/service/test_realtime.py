"""churnguard.realtime (the library under the risk endpoint): one customer scored from a copy of
their own events gets exactly what scoring the whole population gives them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from churnguard.project import Project
from churnguard.realtime import CustomerScratch, score_population_at
from churnguard.registry import get_model_version
from churnguard.scoring import champion, score_customers


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
