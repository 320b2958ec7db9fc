"""Ingestion speed and memory: churnguard vs plain pandas doing the same validation.

    python benchmarks/bench_ingest.py [--events 10000000]

Generates (once, cached in benchmarks/.data) N synthetic events as Parquet and CSV, then runs
each step in a fresh process so its peak RSS is its own:

- churnguard: Parquet into an empty store; the same file again (must add nothing); CSV into an
  empty store;
- pandas: read, validate the same contract (ids non-empty, timestamps parse and go to UTC, amounts
  numeric and finite, ratings 1-5), drop duplicates within the file and rows whose event_id is
  already in the store, then insert into the same DuckDB table — the notebook a user would
  otherwise write.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import peak_rss_mib, run_step, write_section  # noqa: E402

DATA = HERE / ".data"
TYPES = ["view", "view", "view", "visit", "search", "cart_add", "cart_remove", "order", "review",
         "return", "support_ticket", "login"]


def generate(n_events: int) -> tuple[Path, Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    DATA.mkdir(exist_ok=True)
    parquet, csv = DATA / f"events_{n_events}.parquet", DATA / f"events_{n_events}.csv"
    if parquet.exists() and csv.exists():
        return parquet, csv
    rng = np.random.default_rng(0)
    n_users = max(n_events // 50, 1)
    start = np.datetime64("2025-01-01T00:00:00", "us")
    seconds = np.sort(rng.integers(0, 365 * 86400, n_events))
    types = np.array(TYPES)[rng.integers(0, len(TYPES), n_events)]
    is_order = types == "order"
    is_review = types == "review"
    amount = np.where(is_order, np.round(rng.gamma(2.0, 30.0, n_events), 2), np.nan)
    rating = np.where(is_review, rng.integers(1, 6, n_events), 0)
    table = pa.table({
        "event_id": pc.binary_join_element_wise("e", pc.cast(pa.array(np.arange(n_events)), pa.string()), ""),
        "user_id": pc.binary_join_element_wise("u", pc.cast(pa.array(rng.integers(0, n_users, n_events)), pa.string()), ""),
        "ts": pa.array(start + seconds.astype("timedelta64[s]")).cast(pa.timestamp("us", tz="UTC")),
        "type": pa.array(types),
        "item_id": pc.binary_join_element_wise("i", pc.cast(pa.array(rng.integers(0, 5000, n_events)), pa.string()), ""),
        "category": pa.array(np.array([f"c{k}" for k in range(20)])[rng.integers(0, 20, n_events)]),
        "amount": pa.array(amount, mask=~is_order),
        "rating": pa.array(rating, mask=~is_review, type=pa.int8()),
    })
    pq.write_table(table, parquet, row_group_size=1_000_000)
    pacsv.write_csv(table, csv)
    return parquet, csv


# -- measured steps (each runs in its own process) -----------------------------------------------
def step_churnguard(store_path: str, file: str) -> dict[str, object]:
    from churnguard.ingest import ingest_files
    from churnguard.store import Store

    start = time.perf_counter()
    with Store.open(store_path) as store:
        report = ingest_files(store, kind="events", files=[file])
        total = store.con.execute("SELECT count(*) FROM events").fetchone()[0]
    return {"seconds": time.perf_counter() - start, "peak_rss_mib": peak_rss_mib(),
            "rows_read": report.rows_read, "rows_added": report.rows_added, "rows_in_store": total}


def step_pandas(store_path: str, file: str) -> dict[str, object]:
    import numpy as np
    import pandas as pd

    from churnguard.store import Store

    start = time.perf_counter()
    if file.endswith(".parquet"):
        df = pd.read_parquet(file)
    else:
        df = pd.read_csv(file, dtype={"event_id": str, "user_id": str, "type": str,
                                      "item_id": str, "category": str})
    rows_read = len(df)
    ts = pd.to_datetime(df["ts"], utc=True, errors="coerce")
    amount = pd.to_numeric(df["amount"], errors="coerce")
    rating = pd.to_numeric(df["rating"], errors="coerce")
    bad = (
        df["user_id"].isna() | (df["user_id"].astype(str).str.strip() == "")
        | df["type"].isna() | ts.isna()
        | (df["amount"].notna() & ~np.isfinite(amount.fillna(0.0)))
        | (rating.notna() & ~rating.between(1, 5))
    )
    if bad.any():
        raise SystemExit(f"pandas found {int(bad.sum())} bad rows in generated data")
    df = df.assign(ts=ts.dt.tz_convert("UTC").dt.tz_localize(None), amount=amount, rating=rating)
    df = df.drop_duplicates("event_id")
    with Store.open(store_path) as store:
        existing = store.con.execute("SELECT event_id FROM events").df()["event_id"]
        df = df[~df["event_id"].isin(existing)]
        store.con.register("incoming", df)
        with store.transaction() as con:
            con.execute(
                "INSERT INTO events (event_id, user_id, ts, type, item_id, category, amount, rating,"
                " batch_id) SELECT event_id, user_id, ts, type, item_id, category, amount,"
                " rating::TINYINT, 'pandas' FROM incoming")
        total = store.con.execute("SELECT count(*) FROM events").fetchone()[0]
    return {"seconds": time.perf_counter() - start, "peak_rss_mib": peak_rss_mib(),
            "rows_read": rows_read, "rows_added": len(df), "rows_in_store": total}


STEPS = {"churnguard": step_churnguard, "pandas": step_pandas}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(STEPS[args.step](args.store, args.file)))
        return

    parquet, csv = generate(args.events)
    me = str(Path(__file__).resolve())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for tool in ("churnguard", "pandas"):
            for source, label in ((parquet, "Parquet → empty store"), (parquet, "same Parquet again"),
                                  (csv, "CSV → empty store")):
                if label != "same Parquet again":
                    shutil.rmtree(Path(tmp) / tool, ignore_errors=True)
                (Path(tmp) / tool).mkdir(exist_ok=True)
                store = str(Path(tmp) / tool / "bench.duckdb")
                result = run_step([me, "--step", tool, "--store", store, "--file", str(source)])
                print(f"{tool:10s} {label:24s} {result}", flush=True)
                rows.append((tool, label, result))

    by = {(tool, label): r for tool, label, r in rows}
    lines = [f"Ingest {args.events:,} events (8 columns) on 2 cores; each step in a fresh process.",
             "", "| step | churnguard s | rows/s | peak MiB | pandas s | rows/s | peak MiB | speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    for label in ("Parquet → empty store", "same Parquet again", "CSV → empty store"):
        c, p = by[("churnguard", label)], by[("pandas", label)]
        lines.append(
            f"| {label} | {c['seconds']:.2f} | {c['rows_read'] / c['seconds']:,.0f} | {c['peak_rss_mib']:,.0f} "
            f"| {p['seconds']:.2f} | {p['rows_read'] / p['seconds']:,.0f} | {p['peak_rss_mib']:,.0f} "
            f"| {p['seconds'] / c['seconds']:.1f}× |")
    again = by[("churnguard", "same Parquet again")]
    lines += ["", f"Re-ingesting the same file added {again['rows_added']} rows "
              f"(store holds {again['rows_in_store']:,}); pandas added "
              f"{by[('pandas', 'same Parquet again')]['rows_added']}."]
    body = "## Ingestion (issue 2)\n\n" + "\n".join(lines)
    print(body)
    write_section("ingest", body, command=f"python benchmarks/bench_ingest.py --events {args.events}")


if __name__ == "__main__":
    main()
