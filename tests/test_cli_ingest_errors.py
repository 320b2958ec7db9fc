"""Every bad input of the ingest contract, through the command line: exit code, where, and the
store left exactly as it was (reject) or holding exactly the good rows (skip)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnguard.cli import main
from churnguard.store import Store

GOOD = "user_id,ts,type,amount,rating\nu0,2026-01-01T00:00:00Z,view,,\n"


def write(name: str, text: str | bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path
    return make


def truncated_parquet(folder: Path) -> Path:
    path = folder / "events.parquet"
    pq.write_table(pa.table({"user_id": ["u1"] * 50, "ts": ["2026-01-01"] * 50,
                             "type": ["order"] * 50}), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# (id, file maker, extra args, expected fragments of the message)
BAD_INPUTS = [
    ("missing required column", write("e.csv", "user_id,type\nu1,order\n"), [],
     ["e.csv", "missing required column 'ts'"]),
    ("unknown column mapping", write("e.csv", GOOD), ["--map", "ts=when"],
     ["e.csv", "--map ts=when", "no column 'when'"]),
    ("unparsable timestamp", write("e.csv", GOOD + "u1,2026-13-45,order,,\n"), [],
     ["e.csv", "row 2 (line 3)", "column 'ts'", "cannot parse '2026-13-45'"]),
    ("mixed time zones", write("e.csv", GOOD + "u1,2026-01-02 10:00,order,,\n"), [],
     ["e.csv", "row 2 (line 3)", "column 'ts'", "ingest.timezone"]),
    ("non-numeric amount", write("e.csv", GOOD + "u1,2026-01-02T00:00:00Z,order,ten,\n"), [],
     ["e.csv", "row 2 (line 3)", "column 'amount'", "'ten' is not a number"]),
    ("infinite amount", write("e.csv", GOOD + "u1,2026-01-02T00:00:00Z,order,inf,\n"), [],
     ["e.csv", "row 2 (line 3)", "column 'amount'", "not a finite number"]),
    ("rating out of range", write("e.csv", GOOD + "u1,2026-01-02T00:00:00Z,review,,6\n"), [],
     ["e.csv", "row 2 (line 3)", "column 'rating'", "from 1 to 5"]),
    ("empty user id", write("e.csv", GOOD + " ,2026-01-02T00:00:00Z,order,,\n"), [],
     ["e.csv", "row 2 (line 3)", "column 'user_id'", "is empty"]),
    ("empty file", write("e.csv", ""), [], ["e.csv", "the file is empty"]),
    ("wrong delimiter", write("e.csv", GOOD.replace(",", ";")), ["--delimiter", ","],
     ["e.csv", "missing required column", "';'"]),
    ("non-UTF-8 bytes", write("e.csv", GOOD.encode() + b"u1,2026-01-02,order,,\n\xff\xfe,x,y,,\n"),
     [], ["e.csv", "line 4", "UTF-8", "latin-1"]),
    ("truncated Parquet", truncated_parquet, [], ["events.parquet", "Parquet"]),
    ("JSONL line that is not JSON",
     write("e.jsonl", '{"user_id": "u1", "ts": "2026-01-01", "type": "order"}\n{not json\n'), [],
     ["e.jsonl", "row 2 (line 2)", "not valid JSON"]),
]


def snapshot(project: Path) -> dict[str, list[tuple]]:
    with Store.open(project / "churnguard.duckdb", read_only=True) as store:
        return {t: sorted(store.con.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in ("events", "ingest_batches", "quarantine")}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    assert main(["init", str(root)]) == 0
    seed = root / "seed.csv"
    seed.write_text("user_id,ts,type\nu9,2025-12-01T00:00:00Z,order\n")
    assert main(["ingest", "events", str(seed), "--project", str(root)]) == 0
    return root


@pytest.mark.parametrize(("make", "extra", "expected"), [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_exits_2_names_where_and_changes_nothing(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        make: Callable[[Path], Path], extra: list[str], expected: list[str]) -> None:
    before = snapshot(project)
    path = make(tmp_path)
    code = main(["ingest", "events", str(path), *extra, "--project", str(project)])
    err = capsys.readouterr().err
    assert code == 2
    flat = " ".join(err.split())  # rich may wrap long messages
    for fragment in expected:
        assert fragment in flat, f"{fragment!r} not in: {flat}"
    assert snapshot(project) == before


def test_skip_loads_exactly_the_good_rows(project: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = write("e.csv", GOOD + "u1,2026-13-45,order,,\nu2,2026-01-03T00:00:00Z,order,5,\n")(
        tmp_path)
    code = main(["ingest", "events", str(path), "--on-error", "skip", "--project", str(project)])
    out = capsys.readouterr().out
    assert code == 0 and "added 2" in out and "bad 1" in out
    with Store.open(project / "churnguard.duckdb", read_only=True) as store:
        users = sorted(r[0] for r in store.con.execute("SELECT user_id FROM events").fetchall())
        quarantined = store.con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
    assert users == ["u0", "u2", "u9"] and quarantined == 0


def test_quarantine_keeps_the_bad_rows_with_reasons(project: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = write("e.csv", GOOD + "u1,2026-13-45,order,,\n")(tmp_path)
    code = main(["ingest", "events", str(path), "--on-error", "quarantine", "--project",
                 str(project)])
    assert code == 0
    capsys.readouterr()
    assert main(["ingest", "quarantine", "--project", str(project)]) == 0
    listing = capsys.readouterr().out
    assert "e.csv" in listing and "ts" in listing and "2026-13-45" in listing


def test_header_only_and_duplicate_rows_are_not_errors(project: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    header = write("h.csv", "user_id,ts,type\n")(tmp_path)
    assert main(["ingest", "events", str(header), "--project", str(project)]) == 0
    assert "read 0 rows" in capsys.readouterr().out
    twice = write("d.csv", "user_id,ts,type\nu5,2026-01-05,order\nu5,2026-01-05,order\n")(tmp_path)
    assert main(["ingest", "events", str(twice), "--project", str(project)]) == 0
    out = capsys.readouterr().out
    assert "added 1" in out and "duplicates 1" in out
