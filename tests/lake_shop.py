"""A small shop as a data lake holds it, for the tests that read a lake instead of the store
(tests/test_lake_duckdb.py with DuckDB, tests/spark/test_spark_jobs.py with Spark).

A 300-customer simulated shop is ingested into a project, a GBDT champion trained on it, two
supplied labels added at its validation cutoff (a customer the churn rule does not see, and a
member whose label is flipped), and its tables exported to Parquet, the events split in two
files of one folder.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnguard.config import ChurnDefinition
from churnguard.ingest import ingest_files
from churnguard.models.gbdt import GBDTChurnModel
from churnguard.project import init_project
from churnguard.simulate import simulate
from churnguard.training import train_model

SUPPLIED = [("u_supplied_new", False), (None, True)]  # a new customer; a member (filled in) flipped
EVENT_COLUMNS = "event_id, user_id, {ts}, type, item_id, category, amount, rating, session_id, text"


def export_lake(store, folder: Path, *, zone_aware: bool) -> dict[str, str]:  # noqa: ANN001
    """The store's tables as a lake's Parquet files: the events in two files of one folder (with
    ``zone_aware``, the second with zone-aware instants as Spark writes them, the first with naive
    UTC times); paths by table, ``events`` a glob and ``events_folder`` the folder."""
    (folder / "events").mkdir(parents=True)
    for part in (0, 1):
        ts = "CAST(ts AS TIMESTAMPTZ) AS ts" if zone_aware and part == 1 else "ts"
        store.con.execute(f"COPY (SELECT {EVENT_COLUMNS.format(ts=ts)} FROM events "
                          f"WHERE hash(user_id) % 2 = {part}) "
                          f"TO '{folder}/events/part-{part}.parquet' (FORMAT parquet)")
    paths = {"events": str(folder / "events" / "*.parquet"), "events_folder": str(folder / "events")}
    for table, columns in (("users", "user_id, signup_ts"), ("items", "item_id, category"),
                           ("user_attributes", "user_id, name, value"),
                           ("labels", "user_id, as_of, churned")):
        store.con.execute(f"COPY (SELECT {columns} FROM {table}) TO '{folder}/{table}.parquet' "
                          "(FORMAT parquet)")
        paths[table] = str(folder / f"{table}.parquet")
    return paths


def lake_options(paths: dict[str, str], events: str = "events") -> list[str]:
    """The lake options of `features|score --engine duckdb|spark` for ``export_lake``'s paths."""
    return ["--events", paths[events], "--users", paths["users"], "--items", paths["items"],
            "--user-attributes", paths["user_attributes"], "--labels", paths["labels"]]


def build_lake_shop(root: Path, *, zone_aware: bool) -> dict:
    """The project and its lake under ``root``: ``sim`` (the simulation), ``project`` (the
    --project option), ``open`` (its store), ``paths`` (:func:`export_lake`), ``older`` (the
    validation cutoff of the supplied labels), ``member``, ``version`` (the champion),
    ``attributes`` (user attribute rows) and ``last`` (the newest event, naive UTC)."""
    sim = simulate(n_users=300, days=400, seed=11, out_dir=root / "sim")
    project, _ = init_project(root / "project")
    with project.open_store() as store:
        for kind in ("items", "users", "events"):
            ingest_files(store, kind=kind, files=[sim.paths[kind]])
        trained = train_model(store, definition=ChurnDefinition(),
                              model=GBDTChurnModel(n_estimators=60, early_stopping_rounds=20,
                                                   n_jobs=1))
        older = trained.validation_cutoff
        member = store.con.execute(
            "SELECT min(user_id) FROM events WHERE type = 'order' AND ts < ? AND ts >= ? - "
            "INTERVAL 365 DAY", [older, older]).fetchall()[0][0]
        store.con.executemany("INSERT INTO labels (user_id, as_of, churned, batch_id) "
                              "VALUES (?, ?, ?, 't')",
                              [(user or member, older, churned) for user, churned in SUPPLIED])
        attributes = store.con.execute("SELECT count(*) FROM user_attributes").fetchall()[0][0]
        paths = export_lake(store, root / "lake", zone_aware=zone_aware)
    return {"root": root, "sim": sim, "project": ["--project", str(project.root)],
            "open": project.open_store,
            "paths": paths, "older": older, "member": member, "version": trained.version,
            "attributes": attributes,
            "last": pd.read_parquet(sim.paths["events"])["ts"].dt.tz_convert(None).max()}
