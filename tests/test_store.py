"""The store: migrations applied once and recorded, newer schemas refused, transactions atomic."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnguard.store import DATA_TABLES, MIGRATIONS, SCHEMA_VERSION, Store, StoreError


def test_new_store_applies_every_migration_once_and_records_it(tmp_path: Path) -> None:
    path = tmp_path / "churnguard.duckdb"
    with Store.open(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        rows = store.con.execute(
            "SELECT version, description FROM schema_migrations ORDER BY version"
        ).fetchall()
        assert rows == [(m.version, m.description) for m in MIGRATIONS]
        assert set(store.table_counts()) == set(DATA_TABLES)
        assert all(n == 0 for n in store.table_counts().values())


def test_reopening_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "churnguard.duckdb"
    with Store.open(path) as store:
        store.con.execute(
            "INSERT INTO users VALUES ('u1', NULL, 'b1')"
        )
    with Store.open(path) as store:
        assert store.migrate() == []
        assert store.con.execute("SELECT count(*) FROM schema_migrations").fetchone() == (
            len(MIGRATIONS),
        )
        assert store.con.execute("SELECT user_id FROM users").fetchall() == [("u1",)]


def test_store_with_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "churnguard.duckdb"
    with Store.open(path) as store:
        store.con.execute(
            "INSERT INTO schema_migrations VALUES (?, 'from the future', now()::TIMESTAMP)",
            [SCHEMA_VERSION + 1],
        )
    for read_only in (False, True):
        with pytest.raises(StoreError) as info:
            Store.open(path, read_only=read_only)
        assert str(info.value) == (
            f"{path}: the store has schema version {SCHEMA_VERSION + 1}, newer than this "
            f"churnguard understands ({SCHEMA_VERSION}); upgrade churnguard"
        )


def test_read_only_open_of_a_missing_store_says_run_init(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store here; run `churnguard init` first"):
        Store.open(tmp_path / "nope.duckdb", read_only=True)


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    with Store.open(tmp_path / "churnguard.duckdb") as store:
        with pytest.raises(RuntimeError, match="boom"):
            with store.transaction() as con:
                con.execute("INSERT INTO users VALUES ('u1', NULL, 'b1')")
                con.execute("INSERT INTO items VALUES ('i1', NULL, NULL, NULL, 'b1')")
                raise RuntimeError("boom")
        assert store.table_counts()["users"] == 0
        assert store.table_counts()["items"] == 0
        with store.transaction() as con:
            con.execute("INSERT INTO users VALUES ('u1', NULL, 'b1')")
        assert store.table_counts()["users"] == 1


def test_transaction_rolls_back_on_a_failed_statement(tmp_path: Path) -> None:
    with Store.open(tmp_path / "churnguard.duckdb") as store:
        store.con.execute("INSERT INTO users VALUES ('u1', NULL, 'b0')")
        with pytest.raises(Exception, match="(?i)constraint|duplicate key"):
            with store.transaction() as con:
                con.execute("INSERT INTO users VALUES ('u2', NULL, 'b1')")
                con.execute("INSERT INTO users VALUES ('u1', NULL, 'b1')")  # primary key clash
        assert store.con.execute("SELECT user_id FROM users").fetchall() == [("u1",)]


def _views(store: Store) -> set[str]:
    return {name for (name,) in store.con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


def test_registered_yields_a_fresh_view_name_and_unregisters_it_on_exit() -> None:
    import pandas as pd
    import pyarrow as pa

    with Store.in_memory() as store:
        with (store.registered(pa.table({"x": [1, 2, 3]}), "keys") as first,
              store.registered(pd.DataFrame({"x": [10]}), "keys") as second):
            assert first.startswith("__cg_keys_") and second.startswith("__cg_keys_")
            assert first != second
            assert store.con.execute(f"SELECT sum(x) FROM {first}").fetchall() == [(6,)]
            assert store.con.execute(f"SELECT sum(x) FROM {second}").fetchall() == [(10,)]
        assert first not in _views(store) and second not in _views(store)
        with pytest.raises(Exception, match="(?i)does not exist|not found"):
            store.con.execute(f"SELECT * FROM {first}")


def test_registered_unregisters_when_the_body_raises_and_the_transaction_rolls_back() -> None:
    import pyarrow as pa

    with Store.in_memory() as store:
        rows = pa.table({"user_id": ["u1", "u2"], "signup_ts": [None, None], "batch_id": ["b", "b"]})
        with pytest.raises(RuntimeError, match="boom"):
            with store.registered(rows, "users") as view, store.transaction() as con:
                con.execute(f"INSERT INTO users SELECT user_id, signup_ts::TIMESTAMP, batch_id "
                            f"FROM {view}")
                raise RuntimeError("boom")
        assert store.table_counts()["users"] == 0
        assert view not in _views(store)


def test_registered_works_after_a_partly_read_result() -> None:
    import pyarrow as pa

    with Store.in_memory() as store:
        store.con.execute("SELECT * FROM range(10)").fetchone()  # leaves rows unread
        with store.registered(pa.table({"x": [1]}), "after_fetchone") as view:
            assert store.con.execute(f"SELECT x FROM {view}").fetchall() == [(1,)]


def test_in_memory_store_is_migrated() -> None:
    store = Store.in_memory()
    try:
        assert store.schema_version() == SCHEMA_VERSION
    finally:
        store.close()


def test_new_project_settings_are_the_defaults_and_explained(tmp_path):
    from churnguard.config import ProjectConfig, load_config
    from churnguard.project import init_project

    project, created = init_project(tmp_path / "p")
    assert created
    assert load_config(project.root / "churnguard.toml") == ProjectConfig()
    text = (project.root / "churnguard.toml").read_text()
    assert "# timezone =" in text and "lookback_days = 365" in text
