"""A whole cycle on a small shop: every step recorded with its figures; a second run with
nothing new does nothing."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from churnguard.cutoffs import scoring_cutoff
from churnguard.operate import list_cycles
from churnguard.project import Project

from operate.helpers import by_step, counts, run


@pytest.mark.slow  # ~45 s on two shared cores (the plan learns uplift and value models)
def test_a_cycle_runs_every_step_and_records_its_figures(project: Project,
                                                         late_events: pd.DataFrame) -> None:
    before = counts(project)
    record = run(project)
    steps = by_step(record)
    assert record.status == "done" and not record.resumed
    assert {name: r.status for name, r in steps.items()} == {
        "ingest": "done", "score": "done", "monitor": "done", "challenge": "skipped",
        "plan": "done", "deliver": "done", "measure": "done"}

    ingest = steps["ingest"].figures
    assert ingest["rows_added"] == len(late_events)
    assert [f["file"] for f in ingest["ingested"]] == ["events/events-late.parquet"]
    assert (project.root / "inbox" / "done" / "events" / "events-late.parquet").exists()
    assert not (project.root / "inbox" / "events" / "events-late.parquet").exists()

    with project.open_store() as store:
        now = scoring_cutoff(store)
        (batch,) = store.con.execute("SELECT batch_id FROM inbox_files WHERE status = "
                                     "'ingested'").fetchall()[0]
        assert store.con.execute("SELECT count(*) FROM events WHERE batch_id = ?",
                                 [batch]).fetchall()[0][0] == len(late_events)
        campaign = steps["plan"].figures["campaign_id"]
        contacted = store.con.execute(
            "SELECT count(*) FROM plan_rows WHERE campaign_id = ? AND NOT is_control "
            "AND action <> 'none'", [campaign]).fetchall()[0][0]
        measured = store.con.execute("SELECT count(DISTINCT campaign_id), count(*) "
                                     "FROM measurements").fetchall()[0]

    score = steps["score"].figures
    assert pd.Timestamp(score["as_of"]) == pd.Timestamp(now)
    assert score["scored"] == score["tier_high"] + score["tier_medium"] + score["tier_low"] > 0
    monitor = steps["monitor"].figures
    assert monitor["score_drift"] is not None and len(monitor["features"]) > 0
    assert monitor["alarm"] == monitor["drifted"] == bool(monitor["alarms"])
    assert "no challenger due" in steps["challenge"].decision
    assert campaign == f"cycle-{record.cycle_id}"
    assert steps["plan"].figures["expected_cost"] <= 40.0 + 1e-6
    deliver = steps["deliver"].figures["campaigns"]
    assert [(d["campaign_id"], d["sent"], d["failed"]) for d in deliver] == \
        [(campaign, contacted, 0)]
    outbox = project.root / "outbox" / f"{campaign}.jsonl"
    assert len(outbox.read_text().splitlines()) == contacted > 0
    n_measured = len(steps["measure"].figures["measured"])
    assert n_measured >= 1 and measured == (n_measured, n_measured)

    # The record as `churnguard cycles` reads it back.
    (listed,) = list_cycles(project.open_store(read_only=True), limit=5)
    assert listed.cycle_id == record.cycle_id and listed.status == "done"
    assert [r.step for r in listed.records] == list(steps)
    assert json.loads(json.dumps(listed.to_dict(), default=str))["steps"][0]["figures"][
        "rows_added"] == len(late_events)
    after_first = counts(project)
    assert after_first["events"] == before["events"] + len(late_events)

    # Nothing new: every step is skipped, and nothing grows but the cycle record.
    again = run(project)
    assert again.cycle_id != record.cycle_id and again.status == "done"
    assert {r.step: r.status for r in again.records} == {s: "skipped" for s in steps}
    unchanged = by_step(again)
    assert unchanged["ingest"].decision.startswith("no new file")
    assert unchanged["score"].decision.startswith(f"inputs unchanged since cycle "
                                                  f"{record.cycle_id}")
    assert unchanged["plan"].decision.startswith("no plan due")
    assert counts(project) == after_first


def test_a_step_whose_inputs_did_not_change_is_skipped_and_runs_again_when_they_do(
        project: Project) -> None:
    first = by_step(run(project, steps=["ingest", "score"]))
    assert first["ingest"].status == first["score"].status == "done"
    second = by_step(run(project, steps=["ingest", "score"]))
    assert second["score"].status == "skipped"
    assert second["score"].decision == (f"inputs unchanged since cycle "
                                        f"{first['score'].cycle_id}: nothing new to do")
    assert second["score"].fingerprint == first["score"].fingerprint
    with project.open_store() as store:
        (user, newest) = store.con.execute(
            "SELECT user_id, max(ts) FROM events GROUP BY user_id ORDER BY 2 DESC LIMIT 1"
        ).fetchall()[0]
    pd.DataFrame({"user_id": [user], "type": ["visit"],
                  "ts": [(newest + pd.Timedelta(days=2)).isoformat() + "Z"]}).to_csv(
        project.root / "inbox" / "events-visit.csv", index=False)
    third = by_step(run(project, steps=["ingest", "score"]))
    assert third["ingest"].status == third["score"].status == "done"  # a new day to score at
    assert third["score"].fingerprint != first["score"].fingerprint
    assert pd.Timestamp(third["score"].figures["as_of"]) > pd.Timestamp(
        first["score"].figures["as_of"])
