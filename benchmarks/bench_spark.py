"""The training snapshot (population, labels, 71 features) on DuckDB and on Spark local[2], on the
same N events: time, peak memory, events/s per core; and a projection to 10 billion events.

    python benchmarks/bench_spark.py [--events 10000000] [--users 200000] [--no-write]

The events are bench_features.py's synthetic shop (realistic type mix, cached in
benchmarks/.data), exported once to Parquet files partitioned by a hash of user_id (8 buckets),
the layout docs/scale.md recommends for a lake. Each engine runs in a fresh process at one
cutoff (2025-10-01):

- duckdb: the store's ``population_and_labels`` + ``build_features`` (as ``churnguard
  features``); peak RSS of the process;
- spark: a local[2] session (2 shuffle partitions per core, the driver JVM's heap set by
  --driver-memory) reads the Parquet files and runs ``features_job`` (the same labels and
  features), writing Parquet; the time with and without starting the session, and the peak
  memory of the Python driver plus the JVM (its VmHWM).

The driver compares the two outputs (rows, and every column within 1e-9 relative) so the two
engines are known to have computed the same thing. The projection (RESULTS.md "spark") scales the
measured Spark throughput per core to a cluster, with the assumptions written next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_features import CUTOFFS_1, generate  # noqa: E402
from results import DATA, run_step, write_section  # noqa: E402

BUCKETS = 8
TARGET_EVENTS = 10_000_000_000
CORES = 2
# Projection assumptions (RESULTS.md and docs/scale.md say them beside the figures).
CLUSTER_EFFICIENCY = 0.5   # a cluster core does half a local core's work: network shuffle, skew
CLUSTERS = (64, 256, 1024)  # executor cores


def export_parquet(store_path: Path, n_users: int, n_events: int) -> Path:
    """The store's tables as Parquet (events in BUCKETS hash-of-user_id folders), once."""
    folder = DATA / f"spark_{n_users}_{n_events}"
    if (folder / "done").exists():
        return folder
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(store_path), read_only=True)
    con.execute(f"""COPY (SELECT event_id, user_id, ts, type, item_id, category, amount, rating,
                                session_id, text, hash(user_id) % {BUCKETS} AS bucket
                         FROM events)
                    TO '{folder / "events"}' (FORMAT parquet, PARTITION_BY (bucket),
                                              OVERWRITE_OR_IGNORE)""")
    for table, columns in (("users", "user_id, signup_ts"), ("items", "item_id, category"),
                           ("user_attributes", "user_id, name, value")):
        con.execute(f"COPY (SELECT {columns} FROM {table}) TO '{folder / table}.parquet' "
                    "(FORMAT parquet)")
    con.close()
    (folder / "done").write_text("ok")
    return folder


# -- measured steps ------------------------------------------------------------------------------
def step_duckdb(store_path: str, cutoff: str, out: str) -> dict[str, object]:
    from churnguard.config import ChurnDefinition
    from churnguard.snapshots import snapshot_table
    from churnguard.store import Store

    start = time.perf_counter()
    with Store.open(store_path, read_only=True) as store:
        frame = snapshot_table(store, definition=ChurnDefinition(), cutoffs=[cutoff])
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds()
    frame.to_parquet(out, index=False)
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": len(frame), "peak_mib": _peak_mib()}


def _peak_mib(pid: int | str = "self") -> float:
    """A process's peak resident memory (VmHWM), in MiB. Not getrusage's ru_maxrss: a child
    started by fork + exec inherits the parent's (this driver's) maximum in it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int | str = "self") -> float:
    """CPU seconds (user + system, all threads) a process has used: on a shared machine the
    work a step needs, whatever share of the cores it got."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def step_spark(folder: str, cutoff: str, out: str, driver_memory: str) -> dict[str, object]:
    from pyspark.sql import SparkSession

    from churnguard.config import ChurnDefinition
    from churnguard.spark import LakeSources, features_job

    start = time.perf_counter()
    spark = (SparkSession.builder.master(f"local[{CORES}]").appName("bench_spark")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", str(2 * CORES))
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.driver.memory", driver_memory)
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    jvm_pid = spark.sparkContext._gateway.proc.pid
    started = time.perf_counter()
    jvm_cpu_start, python_cpu_start = _cpu_seconds(jvm_pid), _cpu_seconds()
    root = Path(folder)
    # what `churnguard features --engine spark` runs (it takes this session)
    result = features_job(
        sources=LakeSources(events=str(root / "events"), users=str(root / "users.parquet"),
                            items=str(root / "items.parquet"),
                            user_attributes=str(root / "user_attributes.parquet")),
        out=out, definition=ChurnDefinition(), cutoffs=[cutoff])
    done = time.perf_counter()
    cpu = _cpu_seconds(jvm_pid) - jvm_cpu_start + _cpu_seconds() - python_cpu_start
    rows = result.rows
    jvm = _peak_mib(jvm_pid)
    spark.stop()
    python = _peak_mib()
    return {"seconds": done - start, "session_seconds": started - start,
            "query_seconds": done - started, "cpu_seconds": cpu, "rows": rows,
            "jvm_peak_mib": jvm, "python_peak_mib": python, "peak_mib": jvm + python}


def compare(duck_file: str, spark_dir: str) -> list[str]:
    """The columns that differ between the two outputs (beyond 1e-9 relative)."""
    import numpy as np
    import pandas as pd

    a = pd.read_parquet(duck_file).set_index(["user_id", "cutoff"]).sort_index()
    b = pd.read_parquet(spark_dir)
    if isinstance(b["cutoff"].dtype, pd.DatetimeTZDtype):
        b["cutoff"] = b["cutoff"].dt.tz_convert("UTC").dt.tz_localize(None)
    b["cutoff"] = b["cutoff"].astype(a.index.levels[1].dtype)
    b = b.set_index(["user_id", "cutoff"]).sort_index()
    if not a.index.equals(b.index):
        return ["(the populations differ)"]
    bad = []
    for column in a.columns:
        x, y = a[column], b[column]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y) \
                and not pd.api.types.is_bool_dtype(x):
            same = np.allclose(x.astype(float), y.astype(float), rtol=1e-9, atol=0,
                               equal_nan=True)
        else:
            same = (x.astype(object).where(x.notna(), None).tolist()
                    == y.astype(object).where(y.notna(), None).tolist())
        if not same:
            bad.append(column)
    return bad


# -- driver --------------------------------------------------------------------------------------
def _projection(spark_rate_per_core: float, duck_rate: float, duck_peak: float,
                n_events: int) -> list[str]:
    lines = [
        "",
        f"Projection to {TARGET_EVENTS:,} events (10 billion; assumptions below):",
        "",
        "| where | cores | hours |",
        "|---|---|---|",
        f"| DuckDB, one 2-core machine (if memory allowed) | 2 | "
        f"{TARGET_EVENTS / (duck_rate * CORES) / 3600:.1f} |",
    ]
    for cores in CLUSTERS:
        rate = spark_rate_per_core * CLUSTER_EFFICIENCY * cores
        lines.append(f"| Spark cluster | {cores} | {TARGET_EVENTS / rate / 3600:.2f} |")
    scale = TARGET_EVENTS / n_events
    lines += [
        "",
        "Assumptions: the Spark job's work grows linearly with the events (one scan, a hash "
        "join on user_id and aggregations per customer and cutoff; no step is quadratic); a "
        f"cluster core does {CLUSTER_EFFICIENCY:.0%} of the events per second a local core did "
        "here (network shuffle, stragglers, skewed customers); the events are partitioned by "
        "a hash of user_id as here, and the population's customers scale with the events. "
        "Not included: starting the cluster and its executors. Memory: Spark holds one "
        "partition per task, so ~4 GiB per executor core is enough whatever the total; "
        f"DuckDB's peak here ({duck_peak:,.0f} MiB for {n_events:,} events) grows with the "
        f"customers, ×{scale:,.0f} at the same events per customer — "
        f"{duck_peak * scale / 1024 / 1024:,.1f} TiB, far beyond one machine.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--driver-memory", default="3g")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    parser.add_argument("--note", default="", help="a sentence added under the table (e.g. why "
                        "the run was scaled down)")
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        kind, *rest = args.step
        fn = step_duckdb if kind == "duckdb" else step_spark
        print(json.dumps(fn(*rest)))
        return

    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    store = generate(args.users, args.events)
    folder = export_parquet(store, args.users, args.events)
    print(f"data ready: {store}, {folder} ({time.perf_counter() - t0:.0f} s)", flush=True)
    cutoff = CUTOFFS_1[0]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    os.environ.update(env)
    with tempfile.TemporaryDirectory() as tmp:
        duck_out, spark_out = str(Path(tmp) / "duck.parquet"), str(Path(tmp) / "spark")
        duck = run_step([__file__, "--step", "duckdb", str(store), cutoff, duck_out])
        print("duckdb", duck, flush=True)
        spark = run_step([__file__, "--step", "spark", str(folder), cutoff, spark_out,
                          args.driver_memory])
        print("spark", spark, flush=True)
        differ = compare(duck_out, spark_out)
    n = args.events
    # events per CPU-second: what a core does when the step has it; wall-clock shares of a
    # loaded machine say little
    duck_rate, spark_rate = n / duck["cpu_seconds"], n / spark["cpu_seconds"]
    lines = [
        f"{args.users:,} customers, {n:,} events (bench_features.py's synthetic shop; the "
        f"Spark side reads them as Parquet in {BUCKETS} hash-of-user_id buckets); the training "
        f"snapshot (population, labels and every feature, {duck['rows']:,} rows) at "
        f"{cutoff}. Each engine in a fresh process under `nice`; the machine's 1-minute load "
        f"average was {load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
        f"(2 cores): above about 2, wall times are mostly waiting and the CPU times are the "
        f"figures to read.",
        "",
        "| engine | wall s | of which | CPU s | peak memory MiB | events per CPU-second |",
        "|---|---|---|---|---|---|",
        f"| DuckDB (the store) | {duck['seconds']:.1f} | labels + features | "
        f"{duck['cpu_seconds']:.1f} | {duck['peak_mib']:,.0f} (process) | {duck_rate:,.0f} |",
        f"| Spark local[{CORES}] | {spark['seconds']:.1f} | session start "
        f"{spark['session_seconds']:.1f}, job {spark['query_seconds']:.1f} | "
        f"{spark['cpu_seconds']:.1f} (job) | "
        f"{spark['peak_mib']:,.0f} (JVM {spark['jvm_peak_mib']:,.0f} + Python "
        f"{spark['python_peak_mib']:,.0f}; heap {args.driver_memory}) | {spark_rate:,.0f} |",
        "",
        "Events per CPU-second is the events/s one core gives when the step has it to itself "
        "(CPU time of the process, all threads; for Spark the driver JVM, which runs the "
        "local executors, plus the Python driver); wall seconds here are mostly waiting for "
        "the shared cores.",
        "",
        f"- Same result: {spark['rows']:,} Spark rows against {duck['rows']:,}; "
        + ("every column equal within 1e-9 relative." if not differ
           else f"columns that differ: {', '.join(differ)}."),
    ]
    if args.note:
        lines += ["", args.note]
    lines += _projection(spark_rate, duck_rate, duck["peak_mib"], n)
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        command = "nice -n 10 python benchmarks/bench_spark.py"
        if (args.users, args.events) != (200_000, 10_000_000):
            command += f" --users {args.users} --events {args.events}"
        if args.driver_memory != parser.get_default("driver_memory"):
            command += f" --driver-memory {args.driver_memory}"
        if args.note:
            command += " --note '...'"
        write_section("spark", body, command=command)


if __name__ == "__main__":
    main()
