"""Issue 16, item 1: erasing a customer never deletes a file it did not write for them.

Erasing customer `9` (one event) used to delete backtest.json, report.html, plan.csv, scores.csv
and an unrelated notes/README.txt: the file sweep looked for the id as a substring of names and
bytes. Now exports lose the customer's rows only (ids matched as whole values), other files that
name the customer are listed for the operator, and nothing else is touched."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from churnguard import customers
from churnguard.ingest import ingest_files
from churnguard.project import init_project

WHO, NEAR = "9", ("19", "u9", "9a", "99")  # ids that contain the erased one


@pytest.fixture()
def project(tmp_path: Path):
    project, _ = init_project(tmp_path / "shop")
    (tmp_path / "events.csv").write_text(
        "user_id,ts,type,amount\n" + "".join(
            f"{u},2026-02-0{k + 1}T12:00:00Z,order,9\n" for k, u in enumerate((WHO, *NEAR))))
    with project.open_store() as store:
        ingest_files(store, kind="events", files=[tmp_path / "events.csv"])
    root = project.root
    everyone = [WHO, *NEAR]
    pd.DataFrame({"user_id": everyone, "p_churn": [0.9, 0.19, 0.09, 0.5, 0.99],
                  "reason_1": ["9 days late"] * 5}).to_csv(root / "scores.csv", index=False)
    pd.DataFrame({"user_id": everyone, "action": ["coupon_10"] * 5}).to_parquet(
        root / "plan.parquet")
    (root / "sent.jsonl").write_text("".join(json.dumps({"user_id": u, "n": 9}) + "\n"
                                             for u in everyone))
    (root / "backtest.json").write_text(json.dumps(
        {"n_test": 9, "models": [{"name": "gbdt", "roc_auc": 0.9}]}))
    (root / "report.html").write_text("<td>9 customers</td><td>u9</td><td>0.9</td>")
    (root / "notes").mkdir()
    (root / "notes" / "README.txt").write_text("Keep 19 exports and 99 problems.\n")
    (root / "notes" / "call-list.txt").write_text("Call customer 9 on Monday.\n")
    (root / "pretrained").mkdir()
    (root / "pretrained" / "encoder.pt").write_bytes(b"\x00weights 9 \x009\x00")
    return project


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.name.startswith("churnguard.duckdb")}


def test_erasure_rewrites_exports_lists_the_rest_and_deletes_nothing(project) -> None:
    root = project.root
    before = _tree(root)
    report = customers.erase(WHO, root=root, config=project.config.ingest,
                             access=customers.StoreFile(project.store_path))
    after = _tree(root)

    assert set(after) == set(before)  # not one file deleted
    assert report.files_deleted == 0  # (no cache in this project)
    assert report.files_rewritten == ("plan.parquet", "scores.csv", "sent.jsonl")
    # The files that hold "9" as a whole word and are no tables: listed, untouched. (The call
    # list names the customer; the report's "9 customers" may: a person decides.)
    assert report.files_to_review == ("notes/call-list.txt", "report.html")
    for name in ("backtest.json", "report.html", "notes/README.txt", "notes/call-list.txt",
                 "pretrained/encoder.pt"):
        assert after[name] == before[name], name

    # Exports lose customer 9's rows only: the ids that contain "9" stay, values equal to 9 too.
    scores = pd.read_csv(root / "scores.csv", dtype={"user_id": str})
    assert scores["user_id"].tolist() == list(NEAR)
    assert (scores["reason_1"] == "9 days late").all()
    assert pd.read_parquet(root / "plan.parquet")["user_id"].tolist() == list(NEAR)
    lines = [json.loads(line) for line in (root / "sent.jsonl").read_text().splitlines()]
    assert [r["user_id"] for r in lines] == list(NEAR) and {r["n"] for r in lines} == {9}


def test_the_answer_lists_what_was_rewritten_and_what_to_review(project, capsys) -> None:
    from churnguard.cli import main

    assert main(["erase", WHO, "--project", str(project.root)]) == 0
    out, err = capsys.readouterr()
    assert "of 3 exports" in out
    assert "report.html" in err and "notes/call-list.txt" in err and "README" not in err
