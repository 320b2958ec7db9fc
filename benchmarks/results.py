"""What the benchmarks share: their simulated shops and writing figures into RESULTS.md.

Each benchmark owns the text between ``<!-- begin NAME -->`` and ``<!-- end NAME -->`` of
benchmarks/RESULTS.md and replaces it on every run, stamped with the machine, the date and the
command that produced it. Simulated shops, and the stores they are ingested into, are cached
under benchmarks/.data, one folder per benchmark and size (:func:`cached_shop`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

RESULTS = Path(__file__).with_name("RESULTS.md")
DATA = Path(__file__).with_name(".data")
# Every cached shop is simulated from START with a HORIZON-day truth horizon; the folder names
# do not say so, so these must not change while cached data is meant to be reused.
START = dt.date(2025, 1, 1)
HORIZON = 90
KINDS = ("events", "users", "items", "campaigns")
HEADER = "# Benchmark results\n\nLatest figures; every section says how to reproduce it.\n"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), "
            f"{mem_gib:.0f} GiB RAM, Python {platform.python_version()}")


def write_section(name: str, body: str, *, command: str) -> None:
    stamp = (f"_Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; "
             f"command: `{command}`._\n\n")
    section = f"<!-- begin {name} -->\n{stamp}{body.rstrip()}\n<!-- end {name} -->"
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else HEADER
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + section + tail
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text, encoding="utf-8")


def run_step(args: list[str]) -> dict[str, object]:
    """Run one measured step in a fresh Python process and return the JSON it prints last.

    A fresh process per step makes its peak RSS (which the step reports itself, from
    getrusage) that step's alone. The step's stderr (its progress) passes straight through.
    """
    proc = subprocess.run([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}); its messages are above")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_rss_mib() -> float:
    """Peak RSS of the current process in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) over seeds."""
    import numpy as np

    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def run_seeds(script: str, seeds: Sequence[int], options: Sequence[str], *,
              summary: Callable[[dict], str]) -> list[dict[str, object]]:
    """Run ``script --step SEED`` (after ``options``) per seed, each in a fresh process, printing
    ``summary`` of each run as it ends; returns the runs in the order of ``seeds``."""
    runs = []
    for seed in seeds:
        print(f"== seed {seed}", flush=True)
        run = run_step([str(Path(script).resolve()), *options, "--step", str(seed)])
        print(summary(run), flush=True)
        runs.append(run)
    return runs


def newest_labelled_cutoff(days: int) -> dt.date:
    """The newest cutoff whose HORIZON-day labels a ``days``-day shop from START covers.

    The last events fall on day ``days - 1`` and labels need T + horizon <= last event, so
    T = START + days - HORIZON - 1.
    """
    return START + dt.timedelta(days=days - HORIZON - 1)


class Shop(NamedTuple):
    """A cached simulated shop: its store, its simulator output and what building them took."""

    db: Path
    sim: Path
    seconds: dict[str, float]  # "simulate" and "ingest"; 0 for what was already cached


def simulated_shop(folder: Path, *, users: int, days: int, seed: int, scenario: str = "default",
                   cutoffs: list[dt.date] | None = None,
                   zh_share: float | None = None,
                   change_day: int | None = None) -> tuple[Path, float]:
    """``folder/sim`` and the seconds spent simulating it, simulated only if its manifest (which
    the simulator writes last) is missing: 0 seconds then.

    ``cutoffs`` are where the simulator records the exact truth (its default cutoffs if None);
    ``zh_share`` the share of customers who write in Chinese (None: the regions' own);
    ``change_day`` the drift scenario's change day (None: its own).
    """
    sim = folder / "sim"
    if (sim / "manifest.json").exists():
        return sim, 0.0
    from churnguard.simulate import simulate

    started = time.perf_counter()
    simulate(n_users=users, days=days, seed=seed, out_dir=sim, start=START, horizon_days=HORIZON,
             cutoffs=cutoffs, scenario=scenario, zh_share=zh_share, change_day=change_day)
    return sim, time.perf_counter() - started


def ingest_shop(store, sim: Path, *, kinds: Sequence[str] = KINDS) -> None:  # noqa: ANN001
    """Ingest the simulator's Parquet files of ``kinds`` into an open store."""
    from churnguard.config import IngestConfig
    from churnguard.ingest import ingest_files

    # The simulator's calendar starts on START and may run past today: not a wrong clock.
    config = IngestConfig(future_events="allow")
    for kind in kinds:
        ingest_files(store, kind=kind, files=[sim / f"{kind}.parquet"], config=config)


def cached_shop(folder: Path, *, users: int, days: int, seed: int, scenario: str = "default",
                cutoffs: list[dt.date] | None = None, kinds: Sequence[str] = KINDS,
                zh_share: float | None = None, change_day: int | None = None) -> Shop:
    """The shop simulated into ``folder/sim`` and ingested into ``folder/churnguard.duckdb``,
    each built only if missing.

    The store is ingested into ``folder/tmp.duckdb`` and renamed when complete, so an
    interrupted ingest is never taken for a finished one. ``kinds`` must not change for a
    folder that already holds a store: the cached store is reused as it is.
    """
    sim, simulate_seconds = simulated_shop(folder, users=users, days=days, seed=seed,
                                           scenario=scenario, cutoffs=cutoffs,
                                           zh_share=zh_share, change_day=change_day)
    db = folder / "churnguard.duckdb"
    if db.exists():
        return Shop(db=db, sim=sim, seconds={"simulate": simulate_seconds, "ingest": 0.0})
    from churnguard.store import Store

    started = time.perf_counter()
    tmp = folder / "tmp.duckdb"
    tmp.unlink(missing_ok=True)
    with Store.open(tmp) as store:
        ingest_shop(store, sim, kinds=kinds)
    tmp.rename(db)
    return Shop(db=db, sim=sim, seconds={"simulate": simulate_seconds,
                                         "ingest": time.perf_counter() - started})
