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


def _add_events(store, rows: list[tuple[str, dt.datetime, str, float | None]]) -> None:
    store.con.executemany(
        "INSERT INTO events (event_id, user_id, ts, type, amount, batch_id) "
        "VALUES (?, ?, ?, ?, ?, 'realtime-test')",
        [(f"rt-{k}", u, ts, kind, amount) for k, (u, ts, kind, amount) in enumerate(rows)])


def test_real_time_answers_after_new_events_equal_batch_scores_of_the_same_data(
        project_dir: Path) -> None:
    """After new events for a third of the shop's customers, every customer's real-time answer
    (CustomerScratch: features, histories and reason context in NumPy, no SQL) has exactly the
    probability, the tier and the reasons that batch scoring (``churnguard score``: the feature
    SQL over the whole store, predict_proba and explain apart) gives at the same instant; and the
    same customers are in the population. Edge cases: a new customer whose one order came 1 µs
    before the instant (a midnight), one who only visited (lapsed), one known only from a users
    row (lapsed), an order exactly at the instant (not counted yet) and one at 23:59:59.999999
    the day before."""
    project = Project.load(project_dir)
    definition, tiers = project.config.churn, project.config.scoring
    with project.open_store() as store:
        (last,) = store.con.execute("SELECT max(ts) FROM events").fetchall()[0]
        as_of = dt.datetime.combine(last.date() + dt.timedelta(days=2), dt.time())
        users = [u for (u,) in store.con.execute(
            "SELECT DISTINCT user_id FROM events ORDER BY user_id").fetchall()]
        rng = np.random.default_rng(11)
        new = [(u, as_of - dt.timedelta(seconds=int(rng.integers(1, 40 * 86_400))),
                str(rng.choice(["order", "visit", "view", "review"])),
                round(float(rng.gamma(2, 15)), 2)) for u in users[::3]]
        new += [("rt_new_order", as_of - dt.timedelta(microseconds=1), "order", 20.0),
                ("rt_new_visit", as_of - dt.timedelta(hours=3), "visit", None),
                (users[1], as_of, "order", 50.0),
                (users[2], as_of - dt.timedelta(microseconds=1), "order", 7.5),
                (users[4], as_of - dt.timedelta(days=1, microseconds=1), "order", 9.99)]
        _add_events(store, new)
        store.con.execute("INSERT INTO users (user_id, signup_ts, batch_id) "
                          "VALUES ('rt_signed_up_only', ?, 'realtime-test')",
                          [as_of - dt.timedelta(days=3)])
        batch = score_customers(store, definition=definition, tiers=tiers, as_of=as_of,
                                save=False, lang="en")
        version, model = champion(store)
        features = get_model_version(store, version).features
        scratch = CustomerScratch(store)
        asked = [*users, "rt_new_order", "rt_new_visit", "rt_signed_up_only"]
        answers = {}
        try:
            for start in range(0, len(asked), 40):
                answers |= scratch.score(store, asked[start:start + 40], definition=definition,
                                         tiers=tiers, as_of=as_of, version=version,
                                         model=model, features=features, langs=("en",))
            for user in ("rt_new_order", users[1], users[2]):  # alone, as the endpoint asks
                assert scratch.score(store, [user], definition=definition, tiers=tiers,
                                     as_of=as_of, version=version, model=model,
                                     features=features, langs=("en",))[user] == answers[user]
        finally:
            scratch.close()
    assert batch.as_of == as_of
    expected = {row.user_id: row for row in batch.scores.itertuples()}
    active = {u for u, r in answers.items() if r.status == "active"}
    assert active == set(expected)
    assert len(active) > 100 and "rt_new_order" in active
    for user in active:
        got, want = answers[user], expected[user]
        assert got.p_churn == want.p_churn, user  # exactly: the same inputs to the same trees
        assert got.risk_tier == want.risk_tier, user
        assert list(got.reasons["en"]) == [r for r in (want.reason_1, want.reason_2,
                                                       want.reason_3) if r], user
    assert set(answers) == set(asked)
    for user in ("rt_new_visit", "rt_signed_up_only"):
        assert answers[user].status == "lapsed" and answers[user].p_churn is None


def test_btyd_inputs_of_a_few_rows_equal_the_pandas_path(shared_project: Path) -> None:
    """rfm_per_row computes a few rows (the real-time answer) per row in NumPy: the same
    frequency, recency and T, to the bit, as its pandas path for the whole population."""
    from churnguard.models.btyd_churn import _FEW, _rfm_few, rfm_per_row

    project = Project.load(shared_project)
    with project.open_store(read_only=True) as store:
        (last,) = store.con.execute("SELECT max(ts) FROM events").fetchall()[0]
        snapshot = build_snapshot(store, definition=project.config.churn,
                                  cutoffs=[last, last - dt.timedelta(days=40, hours=5)],
                                  with_labels=False)
    assert len(snapshot) > _FEW
    whole = rfm_per_row(snapshot)
    pd.testing.assert_frame_equal(_rfm_few(snapshot, 7), whole, check_exact=True)
    assert whole["frequency"].notna().sum() > 50
    few = snapshot.subset(np.arange(len(snapshot)) < 5)
    pd.testing.assert_frame_equal(rfm_per_row(few), whole.iloc[:5], check_exact=True)


def test_an_erased_customer_s_review_text_leaves_the_scratch_copy(shared_project: Path) -> None:
    """The copy keeps the topic of everyone's latest review by its text; forgetting a customer
    (after an erasure) drops their text and every other row of theirs from it."""
    project = Project.load(shared_project)
    with project.open_store(read_only=True) as store:
        latest = store.con.execute(
            "SELECT user_id, arg_max(text, (rating IS NOT NULL, ts, event_id)) FROM events "
            "WHERE type = 'review' GROUP BY user_id ORDER BY user_id").fetchall()
        texts = [t for _, t in latest]
        user, text = next((u, t) for u, t in latest if t is not None and texts.count(t) == 1)
        scratch = CustomerScratch(store)
        try:
            assert scratch._latest_reviews[user][0] == text and text in scratch._known_topics
            scratch.forget(user)
            assert user not in scratch._latest_reviews and text not in scratch._known_topics
            assert not scratch._topics
            held = repr((scratch._latest_reviews, scratch._known_topics, scratch._signups,
                         scratch._attribute_rows))
            assert text not in held and f"'{user}'" not in held
        finally:
            scratch.close()


def test_the_copy_s_event_sequences_are_the_customers_own(shared_project: Path) -> None:
    """A model that reads event sequences finds, through the real-time snapshot, exactly the
    sequences the whole store gives those customers (the events go into the private copy only
    when first read); the next customers' sequences are theirs, not the previous ones'."""
    from churnguard.sequences import SequenceCache
    from churnguard.features.frame import EventArrays

    project = Project.load(shared_project)
    definition = project.config.churn
    with project.open_store(read_only=True) as store:
        (last,) = store.con.execute("SELECT max(ts) FROM events").fetchall()[0]
        as_of = last + dt.timedelta(hours=2)
        features = get_model_version(store, champion(store)[0]).features
        whole = SequenceCache(store)
        scratch = CustomerScratch(store)
        try:
            users = [u for (u,) in store.con.execute(
                "SELECT DISTINCT user_id FROM events WHERE type = 'order' ORDER BY 1 LIMIT 6"
            ).fetchall()]
            for group in (users[:3], users[3:]):
                ev = EventArrays.of(scratch._load_events(store, group))
                snapshot = scratch.snapshot(ev, group, definition=definition, as_of=as_of,
                                            features=features)
                assert len(snapshot) >= 2
                got = snapshot.meta["sequences"].for_rows(snapshot.index, texts=False)
                want = whole.for_rows(snapshot.index, texts=False)
                for field in ("offsets", "cat", "num", "context"):
                    assert np.array_equal(getattr(got, field), getattr(want, field)), field
                assert int(got.offsets[-1]) > 0
        finally:
            scratch.close()


def test_the_copy_s_text_columns_are_the_customers_own(shared_project: Path) -> None:
    """gbdt+text reads the customers' texts through the snapshot's store: through the real-time
    copy it gets exactly the text columns the whole store gives those customers, the next
    customers theirs (the copy loads their events before the model reads them)."""
    from churnguard.features.frame import EventArrays
    from churnguard.features.text import CustomerTextFeatures
    from churnguard.models.gbdt_text import _store_of

    project = Project.load(shared_project)
    definition = project.config.churn
    with project.open_store(read_only=True) as store:
        (last,) = store.con.execute("SELECT max(ts) FROM events").fetchall()[0]
        as_of = last + dt.timedelta(hours=2)
        features = get_model_version(store, champion(store)[0]).features
        users = [u for (u,) in store.con.execute(
            "SELECT DISTINCT user_id FROM events WHERE type IN ('review', 'support_ticket') "
            "AND ts > ? - INTERVAL 60 DAY ORDER BY 1 LIMIT 6", [last]).fetchall()]
        rows = pd.DataFrame({"user_id": users, "cutoff": pd.Timestamp(as_of)})
        text = CustomerTextFeatures(components=3).fit(store, rows)
        scratch = CustomerScratch(store)
        try:
            for group in (users[:3], users[3:]):
                ev = EventArrays.of(scratch._load_events(store, group))
                snapshot = scratch.snapshot(ev, group, definition=definition, as_of=as_of,
                                            features=features)
                assert len(snapshot) >= 2
                keys = snapshot.index.to_frame(index=False)
                got = text.transform(_store_of(snapshot), keys)
                want = text.transform(store, keys)
                assert (got["text_count_90d"] > 0).all()
                pd.testing.assert_frame_equal(got, want)
        finally:
            scratch.close()
