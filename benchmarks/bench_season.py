"""Drift alarms through a year of weekly monitor passes on a stable simulated shop, with and
without the seasonal check (issue 18's stable line; docs/monitor.md, "The season").

    python benchmarks/bench_season.py [--users 20000] [--days 760] [--start-day 392]
        [--weeks 52] [--seeds 0,1,2]   (defaults: 20,000 customers, 1,130 days, 2027-01-28 on)

A default-scenario shop (no change in how behaviour maps to churn; a festival season every
November and December, as every simulated year has) of ``--users`` customers over ``--days``
days from 2025-01-01. One GBDT champion is trained at the first pass (the library's
``train_model``), then ``run_monitor`` runs at every weekly cutoff from ``--start-day`` for
``--weeks`` weeks, twice: ``[monitor] season = "off"`` (every input and the scores against the
week before) and ``"last_year"`` (the same, asking whether they moved beyond how the same weeks
moved a year earlier, where the store holds those weeks with ``season_history_days`` of history
before them). Every other setting is the default. On a stable shop every alarm is false by the
issue's definition ("at most 1% of feature checks raise a drift alarm"); the table counts them
per mode and per month. The monitor's power against real shifts is measured on synthetic data
in tests/monitor/test_drift.py and docs/monitor.md.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import DATA, START, cached_shop, write_section  # noqa: E402

MODES = ("off", "last_year")


def day_time(day: int) -> dt.datetime:
    return dt.datetime.combine(START + dt.timedelta(days=day), dt.time())


def replay(db: Path, *, start_day: int, weeks: int) -> dict[str, Any]:
    """Both modes' monitor reports at every weekly cutoff (a champion trained at the first)."""
    from churnguard.config import ChurnDefinition, MonitorConfig
    from churnguard.monitor import run_monitor
    from churnguard.registry import CHAMPION, alias_version
    from churnguard.store import Store
    from churnguard.training import train_model

    definition = ChurnDefinition()
    passes: list[dict[str, Any]] = []
    with Store.open(db) as store:
        if alias_version(store, CHAMPION) is None:
            print(f"training the champion at {day_time(start_day):%Y-%m-%d}", flush=True)
            train_model(store, definition=definition, as_of=day_time(start_day), promote=True)
        for week in range(weeks + 1):
            when = day_time(start_day + 7 * week)
            for mode in MODES:
                began = time.perf_counter()
                report = run_monitor(store, as_of=when, definition=definition,
                                     config=MonitorConfig(season=mode))
                checks = [*report.features,
                          *([report.score_drift] if report.score_drift else [])]
                passes.append({
                    "as_of": when, "mode": mode, "seconds": time.perf_counter() - began,
                    "checks": len(checks), "seasonal": report.reference.season is not None,
                    "batch": report.batch_size,
                    "alarms": [(c.name, c.statistic, c.null_p99) for c in checks if c.alarm]})
            last = passes[-2:]
            print(f"{when:%Y-%m-%d}: alarms off {len(last[0]['alarms'])}, last_year "
                  f"{len(last[1]['alarms'])} of {last[0]['checks']} (seasonal: "
                  f"{last[1]['seasonal']}; {last[0]['seconds']:.1f} s / {last[1]['seconds']:.1f} s)",
                  flush=True)
    return {"passes": passes}


def summarize(passes: list[dict[str, Any]], *, users: int, days: int, seeds: list[int],
              start_day: int, weeks: int) -> str:
    by_mode = {m: [p for p in passes if p["mode"] == m] for m in MODES}
    seasonal_weeks = sum(p["seasonal"] for p in by_mode["last_year"])
    lines = [
        "## Drift alarms through the season (issue 18)", "",
        f"Default scenario (stable), {users:,} customers over {days} days from {START}, seeds "
        f"{', '.join(map(str, seeds))}; per seed one GBDT champion trained at "
        f"{day_time(start_day):%Y-%m-%d}; `run_monitor` at "
        f"each of {weeks + 1} weekly cutoffs from {day_time(start_day):%Y-%m-%d}, every input of "
        "the champion and its scores against the week before, each mode with the defaults "
        "otherwise (FDR 0.01, 500 bootstrap draws, `season_history_days` 365). The seasonal "
        f"check applied in {seasonal_weeks} of {len(by_mode['last_year'])} passes (in the others "
        "the same weeks "
        "a year earlier had less history before them). Every alarm is false here by the "
        "issue's definition.",
        "",
        "| `[monitor] season` | seed | checks | alarms | share | weeks with any alarm | "
        "seconds per pass (median) |",
        "|---|---|---|---|---|---|---|"]
    for mode, every in by_mode.items():
        for seed in [*seeds, "all"]:
            rows = [p for p in every if seed == "all" or p["seed"] == seed]
            checks = sum(p["checks"] for p in rows)
            alarms = sum(len(p["alarms"]) for p in rows)
            seconds = sorted(p["seconds"] for p in rows)[len(rows) // 2]
            name = f"**{seed}**" if seed == "all" else str(seed)
            lines.append(f"| {mode} | {name} | {checks:,} | {alarms} | "
                         f"{alarms / max(checks, 1):.2%} | "
                         f"{sum(bool(p['alarms']) for p in rows)} of {len(rows)} | "
                         f"{seconds:.1f} |")
    months = sorted({f"{p['as_of']:%Y-%m}" for p in passes})
    lines += ["", "Alarms per month, all seeds (the checks of both modes are the same):", "",
              "| month | checks | off | last_year |", "|---|---|---|---|"]
    for month in months:
        rows = {m: [p for p in by_mode[m] if f"{p['as_of']:%Y-%m}" == month] for m in MODES}
        lines.append(f"| {month} | {sum(p['checks'] for p in rows['off']):,} | "
                     + " | ".join(str(sum(len(p['alarms']) for p in rows[m])) for m in MODES)
                     + " |")
    for mode in MODES:
        named = collections.Counter(a[0] for p in by_mode[mode] for a in p["alarms"])
        if named:
            lines += ["", f"Inputs that alarmed with `season = \"{mode}\"`: "
                      + ", ".join(f"`{n}` ({k})" for n, k in named.most_common(12)) + "."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=1130, help="days simulated from 2025-01-01")
    parser.add_argument("--start-day", type=int, default=757,
                        help="the first weekly pass (day index; 757 is 2027-01-28, after two "
                             "years of history, so every pass has last year's weeks with a "
                             "year of history before them)")
    parser.add_argument("--weeks", type=int, default=52, help="weekly passes after the first")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated simulator seeds")
    parser.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    args = parser.parse_args()
    if args.start_day + 7 * args.weeks >= args.days:
        parser.error("--start-day + 7 x --weeks must fall inside the simulated --days")
    seeds = [int(s) for s in args.seeds.split(",")]
    passes = []
    for seed in seeds:
        folder = DATA / f"season_{args.users}_{args.days}_{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        shop = cached_shop(folder, users=args.users, days=args.days, seed=seed)
        print(f"== seed {seed}: shop ready ({shop.seconds})", flush=True)
        passes += [{**p, "seed": seed} for p in
                   replay(shop.db, start_day=args.start_day, weeks=args.weeks)["passes"]]
    body = summarize(passes, users=args.users, days=args.days, seeds=seeds,
                     start_day=args.start_day, weeks=args.weeks)
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_season.py" + "".join(
            f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k != "no_write" and v != parser.get_default(k))
        write_section("season", body, command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
