"""Issue 16, item 9: no CSV the product writes runs as a formula when a marketer opens it.

A customer id, a reason or a message that starts with = + - @ (or a tab or carriage return) is
code to Excel, LibreOffice and Google Sheets. `score --out` writes through
:func:`churnguard.files.write_table`, `plan --out` and `deliver --out` through
:func:`churnguard.intervene.deliver.export_plan`, the dashboard's export through
:func:`churnguard.files.csv_cell`: every such cell must come out with a leading apostrophe,
numbers (negative ones included) unchanged, and the other formats (Parquet, JSON) untouched.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from churnguard import files
from churnguard.intervene.deliver import export_plan
from churnguard.store import Store

HOSTILE = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def _cells(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_score_exports_neutralise_formulas_and_keep_numbers(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user_id": [*HOSTILE, "u-ok"],
                          "p_churn": [0.5] * len(HOSTILE) + [-0.25],
                          "reason_1": ["fine"] * len(HOSTILE) + ["=1+1"]})
    files.write_table(frame, tmp_path / "scores.csv")
    header, *rows = _cells(tmp_path / "scores.csv")
    assert header == ["user_id", "p_churn", "reason_1"]
    # A carriage return inside a cell becomes a line feed, which the writer quotes.
    assert [r[0] for r in rows] == ["'" + v.replace("\r", "\n") for v in HOSTILE] + ["u-ok"]
    assert rows[-1] == ["u-ok", "-0.25", "'=1+1"]  # a negative number is a number, not a formula
    # Parquet keeps the values exactly: only the spreadsheet format needs the apostrophe.
    files.write_table(frame, tmp_path / "scores.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "scores.parquet"), frame)


def test_plan_exports_neutralise_formulas(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "churnguard.duckdb")
    store.con.execute("INSERT INTO plans VALUES ('camp', now(), now(), 50, 'planned', '{}', '{}')")
    for k, hostile in enumerate(HOSTILE):
        store.con.execute(
            "INSERT INTO plan_rows (campaign_id, user_id, action, is_control, p_churn, "
            "message_en, message_zh, items) VALUES ('camp', ?, 'coupon_10', false, 0.4, ?, ?, "
            "'[\"i1\"]')", [f"{hostile}{k}", f"@msg {k}", "你好"])
    export_plan(store, campaign_id="camp", path=tmp_path / "plan.csv")
    export_plan(store, campaign_id="camp", path=tmp_path / "plan.json")
    store.close()

    header, *rows = _cells(tmp_path / "plan.csv")
    at = {name: header.index(name) for name in ("user_id", "message_en", "message_zh", "items")}
    assert sorted(r[at["user_id"]] for r in rows) == sorted(
        f"'{h}{k}".replace("\r", "\n") for k, h in enumerate(HOSTILE))
    assert all(r[at["message_en"]].startswith("'@msg") for r in rows)
    assert {r[at["message_zh"]] for r in rows} == {"你好"}
    assert {r[at["items"]] for r in rows} == {'["i1"]'}
    # JSON is for programs: the ids and messages go out exactly as stored.
    records = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))
    assert sorted(r["user_id"] for r in records) == sorted(f"{h}{k}" for k, h in enumerate(HOSTILE))


@pytest.mark.parametrize("value, expected", [("=1", "'=1"), ("ok", "ok"), (3, 3), (-1.5, -1.5),
                                             (None, None), ("", ""), ("\rx", "'\nx"),
                                             ("a\r\nb", "a\nb")])
def test_one_cell_rule_for_every_writer(value: object, expected: object) -> None:
    assert files.csv_cell(value) == expected


def test_a_failed_export_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_text("old\n", encoding="utf-8")

    def broken(tmp: Path) -> None:
        tmp.write_text("half", encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.replace_atomically(path, broken)
    assert path.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]
