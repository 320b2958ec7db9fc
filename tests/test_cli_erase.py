"""``churnguard erase USER_ID``: the same erasure as ``DELETE /v1/users/{id}`` (both call
:func:`churnguard.customers.erase`): afterwards no table row and no file under the project holds
the id; an unknown id is bad input (exit code 2, like the API's 404).

Below, erasure meets Parquet and JSON exports inside the project (read as data by the checks:
zstd pages hide an id's bytes), a pseudonymised project erased by the shop's raw id, and
erasures that fail; each check is shown to fail on a deliberately broken erasure."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnguard import customers, erasure
from churnguard.cli import main
from churnguard.config import IngestConfig, ProjectConfig
from churnguard.erasure import ErasureError, stored_user_id, tables_mentioning
from churnguard.ingest import ingest_files
from churnguard.project import Project, init_project
from churnguard.store import DATA_TABLES, Store

WHO = "erase-me-7f3a9c"
OTHER = "u0000001"


def _holding(root: Path, needle: str) -> list[str]:
    patterns = [needle.encode(c) for c in ("utf-8", "utf-16-le", "utf-32-le")]
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and (needle in p.name
                                      or any(x in p.read_bytes() for x in patterns)))


def _seed(root: Path, inputs: Path) -> None:
    """The customer (and one other) in events, users, attributes, labels, campaigns,
    quarantine, a plan and its delivery, backtest predictions; a cache and an export."""
    inputs.mkdir()
    (inputs / "events.csv").write_text(
        "user_id,ts,type,amount\n"
        + "".join(f"{u},2026-02-{d:02d}T12:00:00Z,order,30\n" for u in (WHO, OTHER)
                  for d in (1, 8, 15)))
    (inputs / "users.csv").write_text(
        f"user_id,signup_ts,region\n{WHO},2025-03-01,eu-west\n{OTHER},2025-03-02,eu-west\n")
    (inputs / "labels.csv").write_text(f"user_id,as_of,churned\n{WHO},2025-12-01,false\n")
    (inputs / "campaigns.csv").write_text(
        "user_id,campaign_id,action,assigned_at,is_control\n"
        f"{WHO},hist-1,coupon_10,2025-11-01,false\n")
    (inputs / "bad.csv").write_text(f"user_id,ts,type\n{WHO},not-a-time,order\n")
    with Store.open(root / "churnguard.duckdb") as store:
        for kind in ("events", "users", "labels", "campaigns"):
            ingest_files(store, kind=kind, files=[inputs / f"{kind}.csv"])
        ingest_files(store, kind="events", files=[inputs / "bad.csv"], on_error="quarantine")
        store.con.execute("INSERT INTO plans VALUES ('camp-1', now(), now(), 50, 'delivered', "
                          "'{}', '{}')")
        store.con.execute("INSERT INTO plan_rows (campaign_id, user_id, action, is_control, "
                          "message_en) VALUES ('camp-1', ?, 'coupon_10', false, 'Hi')", [WHO])
        store.con.execute("INSERT INTO deliveries VALUES ('camp-1', ?, 'k1', 'crm', 'sent', 1, "
                          "200, NULL, now())", [WHO])
        store.con.execute("INSERT INTO backtest_predictions VALUES ('run-1', 'gbdt', ?, true, "
                          "0.4)", [WHO])
    cache = root / ".churnguard-cache" / "sequences" / "20260225-x"
    cache.mkdir(parents=True)
    np.save(cache / "users.npy", np.array([OTHER, WHO]))
    (root / "exports").mkdir()
    (root / "exports" / "scores.csv").write_text(f"user_id,p\n{WHO},0.4\n")
    (root / "exports" / "other.csv").write_text(f"user_id,p\n{OTHER},0.4\n")


def test_erase_leaves_no_row_and_no_file_with_the_id(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "shop"
    assert main(["init", str(root)]) == 0
    _seed(root, tmp_path / "inputs")
    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        before = tables_mentioning(store, [WHO])
    assert {"events", "users", "user_attributes", "labels", "campaigns", "quarantine",
            "plan_rows", "deliveries", "backtest_predictions"} <= set(before)
    capsys.readouterr()

    assert main(["erase", WHO, "--project", str(root)]) == 0
    out, _ = capsys.readouterr()
    assert WHO not in out  # like the API's answer: the output names no one

    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        assert tables_mentioning(store, [WHO]) == {}
        assert tables_mentioning(store, [OTHER]) != {}
        audit = store.con.execute("SELECT erasure_id, rows_deleted FROM erasures").fetchall()
    assert len(audit) == 1
    assert json.loads(audit[0][1]) == {"events": 3, "users": 1, "user_attributes": 1,
                                       "labels": 1, "campaigns": 1, "scores": 0,
                                       "backtest_predictions": 1, "plan_rows": 1,
                                       "deliveries": 1, "quarantine": 1, "assist_log": 0}
    assert audit[0][0] in out
    assert _holding(root, WHO) == []
    assert (root / "exports" / "other.csv").exists()

    # The same erasure again: nobody is left to erase, which is bad input (the API's 404).
    assert main(["erase", WHO, "--project", str(root)]) == 2
    out, err = capsys.readouterr()
    assert "no such customer" in out + err
    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        assert len(store.con.execute("SELECT * FROM erasures").fetchall()) == 1


def test_erase_of_an_unknown_id_changes_nothing(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "shop"
    assert main(["init", str(root)]) == 0
    assert main(["erase", "nobody-here", "--project", str(root)]) == 2
    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        assert store.con.execute("SELECT count(*) FROM erasures").fetchall() == [(0,)]


# -- exports in Parquet and JSON, pseudonymised ids, failed erasures ------------------------------
# The checks below read every file as data (a Parquet file's compressed pages hide the bytes of
# the ids it holds), and each is shown to fail on a broken erasure (the "can fail" cases).
SECRET = "a-pseudonym-key-for-erasure-tests"
KEY_ENV = "CHURNGUARD_PSEUDONYM_KEY"


def _values(document: object) -> Iterator[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield str(key)
            yield from _values(value)
    elif isinstance(document, list):
        for value in document:
            yield from _values(value)
    elif document is not None:
        yield str(document)


def _file_holds(path: Path, needles: list[str]) -> bool:
    """Whether the file holds a needle: Parquet and JSON read as data, anything else (the store
    too) as UTF-8/16/32 bytes."""
    if any(n in path.name for n in needles):
        return True
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        cells = (str(v) for column in table.columns for v in column.to_pylist())
        return any(n in cell for cell in cells for n in needles)
    if path.suffix == ".json":
        return any(n in value for value in _values(json.loads(path.read_text("utf-8")))
                   for n in needles)
    data = path.read_bytes()
    return any(n.encode(c) in data for n in needles for c in ("utf-8", "utf-16-le", "utf-32-le"))


def files_holding(root: Path, needles: list[str]) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and _file_holds(p, needles))


def _write_parquet(path: Path, user_ids: list[str]) -> None:
    """A scores export as a BI tool writes it: zstd pages and no column statistics, so the ids'
    bytes appear nowhere in the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Other customers of the shop, as in any real export (with only a few rows, zstd would
    # store the ids as they are).
    user_ids = [f"u9{i:06d}" for i in range(60)] + user_ids
    table = pa.table({"user_id": user_ids, "p_churn": [0.25 + i / 1000 for i in
                                                       range(len(user_ids))]})
    pq.write_table(table, path, compression="zstd", write_statistics=False)


def _write_json(path: Path, user_ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"campaign": "spring", "contacts": [
        {"user_id": u, "action": "coupon_10"} for u in user_ids]}), encoding="utf-8")


def _make_project(root: Path, inputs: Path, *, pseudonymise: bool) -> Project:
    """The customer and others in events, users (with an attribute), labels, campaigns and a
    quarantined bad row, ingested as the shop writes its ids (hashed when ``pseudonymise``)."""
    project, _ = init_project(root, config=ProjectConfig(
        ingest=IngestConfig(pseudonymise=pseudonymise)))
    inputs.mkdir()
    people = (WHO, OTHER, "u0000002")
    (inputs / "events.csv").write_text(
        "user_id,ts,type,amount\n" + "".join(f"{u},2026-02-{d:02d}T12:00:00Z,order,30\n"
                                             for u in people for d in (1, 8, 15)))
    (inputs / "users.csv").write_text(
        "user_id,signup_ts,region\n" + "".join(f"{u},2025-03-01,eu-west\n" for u in people))
    (inputs / "labels.csv").write_text(f"user_id,as_of,churned\n{WHO},2025-12-01,false\n"
                                       f"{OTHER},2025-12-01,true\n")
    (inputs / "campaigns.csv").write_text(
        "user_id,campaign_id,action,assigned_at,is_control\n"
        f"{WHO},hist-1,coupon_10,2025-11-01,false\n{OTHER},hist-1,coupon_10,2025-11-01,true\n")
    (inputs / "bad.csv").write_text(f"user_id,ts,type\n{WHO},not-a-time,order\n"
                                    f"{OTHER},not-a-time,order\n")
    config = project.config.ingest
    with project.open_store() as store:
        for kind in ("events", "users", "labels", "campaigns"):
            ingest_files(store, kind=kind, files=[inputs / f"{kind}.csv"], config=config)
        ingest_files(store, kind="events", files=[inputs / "bad.csv"], on_error="quarantine",
                     config=config)
    return project


def _exports(root: Path, *, who: str, others: list[str]) -> None:
    """A Parquet and a JSON export that hold the customer among others, and one of each that
    does not; and a cache."""
    _write_parquet(root / "exports" / "scores.parquet", [*others, who])
    _write_json(root / "exports" / "contacts.json", [who, *others])
    _write_parquet(root / "exports" / "others.parquet", others)
    _write_json(root / "exports" / "others.json", others)
    cache = root / ".churnguard-cache" / "sequences" / "x"
    cache.mkdir(parents=True)
    np.save(cache / "users.npy", np.array([*others, who]))
    # The test's own reason to read Parquet as data: a byte scan cannot see the id.
    assert who.encode() not in (root / "exports" / "scores.parquet").read_bytes()


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under the project but the store, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith("churnguard.duckdb")}


def _rows(root: Path) -> dict[str, list[tuple]]:
    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        return {t: sorted(store.con.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in (*DATA_TABLES, "erasures")}


def check_erasure_of_exports(tmp_path: Path) -> None:
    """Library erasure in a plain project: no row, no file (Parquet and JSON read as data) holds
    the id; the exports of others stay as they were."""
    root = tmp_path / "shop"
    project = _make_project(root, tmp_path / "inputs", pseudonymise=False)
    _exports(root, who=WHO, others=[OTHER, "u0000002"])
    kept = {name: data for name, data in _tree(root).items() if "others" in name}
    assert files_holding(root, [WHO]) != []

    report = customers.erase(WHO, root=root, config=project.config.ingest,
                             access=customers.StoreFile(project.store_path))
    assert report.total_rows > 0
    with Store.open(project.store_path, read_only=True) as store:
        assert tables_mentioning(store, [WHO]) == {}
        assert {"events", "users", "labels", "campaigns"} <= set(
            tables_mentioning(store, [OTHER]))
    assert files_holding(root, [WHO]) == []
    assert {name: data for name, data in _tree(root).items() if "others" in name} == kept


def check_erasure_by_raw_id_when_pseudonymised(tmp_path: Path) -> None:
    """``churnguard erase`` with the shop's own id in a pseudonymised project: the rows under the
    hashed id, the quarantined records that hold the raw one, and the exports of either form
    (Parquet of hashed ids, JSON of raw ones) are gone; nothing names the customer."""
    root = tmp_path / "shop"
    project = _make_project(root, tmp_path / "inputs", pseudonymise=True)
    hashed = stored_user_id(WHO, project.config.ingest)
    other_hashed = stored_user_id(OTHER, project.config.ingest)
    assert hashed != WHO
    _exports(root, who=hashed, others=[other_hashed])
    _write_json(root / "crm" / "raw-contacts.json", [WHO, OTHER])
    with Store.open(project.store_path, read_only=True) as store:
        held = tables_mentioning(store, [hashed])
        # Quarantine keeps the rejected row (raw today; hashed would do as well).
        assert "quarantine" in tables_mentioning(store, [WHO, hashed])
    assert {"events", "users", "user_attributes", "labels", "campaigns"} <= set(held)

    assert main(["erase", WHO, "--project", str(root)]) == 0
    with Store.open(project.store_path, read_only=True) as store:
        assert tables_mentioning(store, [WHO, hashed]) == {}
        assert {"events", "users", "labels", "campaigns"} <= set(
            tables_mentioning(store, [other_hashed]))
    assert files_holding(root, [WHO, hashed]) == []
    assert (root / "exports" / "others.parquet").exists()


def test_erasure_reads_parquet_and_json_exports_as_data(tmp_path: Path) -> None:
    check_erasure_of_exports(tmp_path)


def test_erasure_by_the_raw_id_in_a_pseudonymised_project(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    check_erasure_by_raw_id_when_pseudonymised(tmp_path)
    out, _ = capsys.readouterr()
    assert WHO not in out and stored_user_id(WHO, IngestConfig(pseudonymise=True)) not in out


_real_customer_ids = erasure.customer_ids


def _parquet_never_read(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(erasure, "_rewrite_parquet", lambda path, ids: None)
    mp.setattr(erasure, "_parquet_names", lambda path, ids: False)


def _json_never_rewritten(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(erasure, "_rewrite_json", lambda path, ids: None)


def _id_not_pseudonymised(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(erasure, "stored_user_id", lambda user_id, config=None: user_id.strip())


def _raw_id_not_looked_for(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(customers, "customer_ids",
               lambda user_id, config=None: _real_customer_ids(user_id, config)[:1])


@pytest.mark.parametrize(("check", "break_"), [
    (check_erasure_of_exports, _parquet_never_read),
    (check_erasure_of_exports, _json_never_rewritten),
    (check_erasure_by_raw_id_when_pseudonymised, _parquet_never_read),
    (check_erasure_by_raw_id_when_pseudonymised, _id_not_pseudonymised),
    (check_erasure_by_raw_id_when_pseudonymised, _raw_id_not_looked_for),
], ids=["exports-parquet-never-read", "exports-json-never-rewritten",
        "pseudonymised-parquet-never-read", "pseudonymised-id-not-hashed",
        "pseudonymised-raw-id-not-looked-for"])
def test_the_erasure_checks_fail_on_a_broken_erasure(
        check: Callable[[Path], None], break_: Callable[[pytest.MonkeyPatch], None],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    break_(monkeypatch)
    with pytest.raises(AssertionError):
        check(tmp_path)


# A failure half-way through deleting the rows: one more table to erase, which does not exist, so
# DuckDB fails after the real tables' DELETEs ran.
def _fail_after_the_deletes(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(erasure, "USER_TABLES", (*erasure.USER_TABLES, "no_such_table"))


def check_failed_erasure_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         *, pseudonymise: bool) -> None:
    """An erasure that fails (half-way through the rows, or before them: no pseudonym key)
    leaves every row and every file, the cache included, as it was."""
    root = tmp_path / "shop"
    project = _make_project(root, tmp_path / "inputs", pseudonymise=pseudonymise)
    who = stored_user_id(WHO, project.config.ingest)
    _exports(root, who=who, others=[stored_user_id(OTHER, project.config.ingest)])
    rows, files = _rows(root), _tree(root)
    access = customers.StoreFile(project.store_path)
    if pseudonymise:  # fails before it starts: the key is not set
        monkeypatch.delenv(KEY_ENV)
        with pytest.raises(ErasureError, match=KEY_ENV):
            customers.erase(WHO, root=root, config=project.config.ingest, access=access)
        assert main(["erase", WHO, "--project", str(root)]) == 1
        monkeypatch.setenv(KEY_ENV, SECRET)
    else:
        with monkeypatch.context() as mp:
            _fail_after_the_deletes(mp)
            with pytest.raises(duckdb.CatalogException, match="no_such_table"):
                customers.erase(WHO, root=root, config=project.config.ingest, access=access)
    assert _rows(root) == rows
    assert _tree(root) == files
    # Nothing is stuck: the same erasure now goes through.
    customers.erase(WHO, root=root, config=project.config.ingest, access=access)
    assert files_holding(root, [WHO, who]) == []


@pytest.mark.parametrize("pseudonymise", [False, True], ids=["mid-deletion", "no-key"])
def test_a_failed_erasure_changes_nothing(pseudonymise: bool, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    check_failed_erasure_changes_nothing(tmp_path, monkeypatch, pseudonymise=pseudonymise)


@contextlib.contextmanager
def _no_transaction(self: Store) -> Iterator[duckdb.DuckDBPyConnection]:
    yield self.con  # every statement commits on its own


def _rows_outside_a_transaction(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(Store, "transaction", _no_transaction)


def _files_before_rows(mp: pytest.MonkeyPatch) -> None:
    real = customers.erase_customer_rows

    def files_first(store: Store, ids: list[str]) -> object:
        erasure.sweep_customer_files(Path(store.path).parent, ids)
        return real(store, ids)

    mp.setattr(customers, "erase_customer_rows", files_first)


@pytest.mark.parametrize("break_", [_rows_outside_a_transaction, _files_before_rows],
                         ids=["rows-outside-a-transaction", "files-before-rows"])
def test_the_failed_erasure_check_fails_on_a_broken_erasure(
        break_: Callable[[pytest.MonkeyPatch], None], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    break_(monkeypatch)
    with pytest.raises(AssertionError):
        check_failed_erasure_changes_nothing(tmp_path, monkeypatch, pseudonymise=False)
