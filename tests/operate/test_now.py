"""A cycle run with --now at the moment the data ends (a replay's weekly cycle, or
`churnguard run --now` on a store just loaded) trains as a cycle without --now does: on every
label there is. It used to validate on now - horizon, whose labels the data does not quite
cover (the last event comes before midnight), and the first model failed to train."""

from __future__ import annotations

from pathlib import Path

from churnguard.cutoffs import scoring_cutoff, training_cutoffs
from churnguard.ingest import ingest_files
from churnguard.project import init_project
from churnguard.registry import CHAMPION, alias_version, get_model_version

from operate.helpers import by_step, run


def test_the_first_model_trains_at_a_now_where_the_data_ends(template: Path,
                                                             tmp_path: Path) -> None:
    project, _ = init_project(tmp_path / "fresh")
    inputs = template / "inputs"
    with project.open_store() as store:
        for kind in ("items", "users", "events", "campaigns"):
            ingest_files(store, kind=kind, files=[inputs / f"{kind}.parquet"])
        now = scoring_cutoff(store)  # the midnight after the newest event
        _, validation = training_cutoffs(store, definition=project.config.churn)

    record = run(project, steps=["challenge"], now=now)

    step = by_step(record)["challenge"]
    assert record.status == "done", record.error
    assert step.status == "done" and step.figures["promoted"]
    with project.open_store() as store:
        champion = get_model_version(store, alias_version(store, CHAMPION))
    assert champion.version == step.figures["trained"]
    # Validated where a model trained on all the data validates: labels the data covers.
    assert champion.data_window["validation_cutoff"] == f"{validation:%Y-%m-%d}"
