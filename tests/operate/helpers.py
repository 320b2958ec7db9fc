"""Small helpers of the cycle tests."""

from __future__ import annotations

from churnguard.operate import CycleRecord, OneStore, run_cycle
from churnguard.project import Project


def run(project: Project, **kwargs: object) -> CycleRecord:
    with project.open_store() as store:
        return run_cycle(OneStore(store), project=project, **kwargs)  # type: ignore[arg-type]


def by_step(record: CycleRecord) -> dict[str, object]:
    return {r.step: r for r in record.records}


def counts(project: Project) -> dict[str, int]:
    """Rows of the tables a repeated effect would grow."""
    with project.open_store() as store:
        return {t: store.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                for t in ("events", "ingest_batches", "inbox_files", "plans", "plan_rows",
                          "deliveries", "measurements", "scores", "models")}
