"""The inbox: each file's content is ingested exactly once; refused files are recorded, moved
aside with a note and never retried."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from churnguard.project import Project

from operate.helpers import by_step, counts, run


def _new_orders(project: Project, n: int) -> pd.DataFrame:
    """``n`` orders of known customers, after the newest stored event."""
    with project.open_store() as store:
        users = [u for (u,) in store.con.execute(
            "SELECT DISTINCT user_id FROM events ORDER BY user_id LIMIT ?", [n]).fetchall()]
        (newest,) = store.con.execute("SELECT max(ts) FROM events").fetchall()[0]
    return pd.DataFrame({"user_id": users, "type": "order", "amount": 12.5,
                         "ts": [(newest + pd.Timedelta(hours=i + 1)).isoformat() + "Z"
                                for i in range(n)]})


def test_only_a_new_file_is_ingested_and_the_same_bytes_under_another_name_are_not(
        project: Project, late_events: pd.DataFrame) -> None:
    first = by_step(run(project, steps=["ingest"]))["ingest"]
    assert first.figures["rows_added"] == len(late_events)
    inbox = project.root / "inbox"

    new = inbox / "events-orders-2.csv"  # top level: the kind from the name
    _new_orders(project, 3).to_csv(new, index=False)
    before = counts(project)
    second = by_step(run(project, steps=["ingest"]))["ingest"]
    assert second.status == "done"
    assert [(f["file"], f["kind"], f["rows_added"]) for f in second.figures["ingested"]] == \
        [("events-orders-2.csv", "events", 3)]
    after = counts(project)
    assert after["events"] == before["events"] + 3
    assert after["inbox_files"] == before["inbox_files"] + 1
    assert after["ingest_batches"] == before["ingest_batches"] + 1

    # The same bytes again, under another name and in the kind folder: not loaded twice.
    shutil.copy(inbox / "done" / "events-orders-2.csv", inbox / "events" / "copy.csv")
    third = by_step(run(project, steps=["ingest"]))["ingest"]
    assert third.status == "skipped"
    assert third.figures["duplicates"] == [{"file": "events/copy.csv",
                                            "same_as": "events-orders-2.csv",
                                            "cycle_id": second.cycle_id}]
    assert counts(project)["events"] == after["events"]
    assert not (inbox / "events" / "copy.csv").exists()
    assert (inbox / "done" / "events" / "copy.csv").exists()


def test_a_refused_file_is_recorded_moved_aside_with_a_note_and_never_retried(
        project: Project) -> None:
    inbox = project.root / "inbox"
    bad = inbox / "events" / "broken.csv"
    bad.write_text("user_id,type,ts\nu1,order,not a time\n")
    nameless = inbox / "export.csv"
    nameless.write_text("user_id,type,ts\nu1,order,2026-01-01\n")
    (inbox / "orders").mkdir()
    (inbox / "orders" / "march.csv").write_text("user_id,type,ts\nu2,order,2026-01-01\n")
    before = counts(project)
    record = run(project, steps=["ingest"])
    ingest = by_step(record)["ingest"]
    assert record.status == "done"  # a refused file does not stop the cycle
    refused = {f["file"]: f["error"] for f in ingest.figures["rejected"]}
    assert set(refused) == {"events/broken.csv", "export.csv", "orders/march.csv"}
    assert "cannot tell what orders/march.csv holds" in refused["orders/march.csv"]
    assert "ts" in refused["events/broken.csv"]
    assert "cannot tell what export.csv holds" in refused["export.csv"]
    note = inbox / "rejected" / "events" / "broken.csv.error.txt"
    assert note.read_text().strip() == refused["events/broken.csv"]
    assert (inbox / "rejected" / "export.csv").exists() and not nameless.exists()
    with project.open_store() as store:
        rows = store.con.execute("SELECT name, status, batch_id, error FROM inbox_files "
                                 "WHERE status = 'rejected' ORDER BY name").fetchall()
    assert [(n, s, b) for n, s, b, _ in rows] == [("events/broken.csv", "rejected", None),
                                                  ("export.csv", "rejected", None),
                                                  ("orders/march.csv", "rejected", None)]
    # Nothing of the refused files reached the store; the late events did.
    assert counts(project)["ingest_batches"] == before["ingest_batches"] + 1

    # Not retried: the next cycle has nothing to do; the same bytes dropped again are refused
    # at once, citing the first refusal.
    assert by_step(run(project, steps=["ingest"]))["ingest"].status == "skipped"
    shutil.copy(inbox / "rejected" / "events" / "broken.csv", inbox / "events" / "again.csv")
    again = by_step(run(project, steps=["ingest"]))["ingest"]
    assert again.figures["duplicates"][0]["refused"] is True
    assert "refused before (as events/broken.csv" in \
        (inbox / "rejected" / "events" / "again.csv.error.txt").read_text()
    assert counts(project)["inbox_files"] == before["inbox_files"] + 4


def test_files_still_being_written_wait(project: Project) -> None:
    inbox = project.root / "inbox"
    for name in ("events-new.csv.part", ".events-new.csv"):
        (inbox / name).write_text("user_id,type,ts\nu1,order,2026-01-01\n")
    ingest = by_step(run(project, steps=["ingest"]))["ingest"]
    assert [f["file"] for f in ingest.figures["ingested"]] == ["events/events-late.parquet"]
    assert ingest.figures["rejected"] == []
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == [".events-new.csv",
                                                                      "events-new.csv.part"]
