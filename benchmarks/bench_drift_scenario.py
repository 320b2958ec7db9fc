"""How much does a never-retrained model lose after the ``drift`` scenario's change?

    python benchmarks/bench_drift_scenario.py [--users 10000] [--days 730] [--change-day 365]
        [--seeds 0] [--every 28] [--scenarios drift,default]
        [--no-write]

The ``drift`` scenario (``simulate/scenarios.py``) is the default shop until ``change_day``, then
a change in how behaviour maps to churn (a competitor's fast delivery, a lasting price rise). This
measures the change's size as a model sees it. Per scenario (``drift``, and ``default`` with the
same seed as the control that should show no loss) and seed:

1. simulate the shop (truth at the test cohorts' cutoffs) and ingest it into a store;
2. the never-retrained model: the catalogue's ``gbdt`` (its demo settings) fitted with the labels
   known at the change date: validation cutoff V0, the newest with V0 + horizon <= change day,
   training cutoffs V0 - 28, - 56, - 84 days;
3. every ``--every`` days from the change day on, a test cohort at cutoff T: the
   population and labels at T (orders in [T, T + 90 days)). The retrained model for it is the same
   recipe fitted on the labels matured by T (validation V: the newest cutoff on the 7-day grid
   with V + horizon <= T, training V - 28, - 56, - 84); the oracle is the simulator's true P(churn)
   at T;
4. ROC-AUC of each on the cohort.

The loss of the never-retrained model is AUC(retrained) - AUC(never retrained), averaged over the
cohorts whose retrained model learnt from post-change cutoffs only (its training and validation
cutoffs all on or after the change day, so T >= change + 175 days); the cohorts before show the
change becoming measurable and the retrained model catching up. Writes the section
"drift_scenario" of RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import churnguard  # noqa: E402, F401  (before torch: OMP_WAIT_POLICY)
from results import DATA, HORIZON, START, cached_shop, mean_std, write_section  # noqa: E402

GRID_DAYS = 7  # cutoffs for training and validation lie on a weekly grid ending at the cohorts
TRAIN_STEPS = (28, 56, 84)  # training cutoffs: these many days before the validation cutoff


def plan(*, days: int, change_day: int, every: int,
         cohorts: list[int] | None = None) -> dict[str, object]:
    """The cutoffs (day indices): the test cohorts, the never-retrained model's validation and
    training cutoffs, and per cohort its retrained model's. ``cohorts`` replaces the cohorts
    (every ``every`` days from the change day through the last labelled cutoff).

    >>> p = plan(days=730, change_day=365, every=28)
    >>> p["never"], p["cohorts"][0], p["cohorts"][-1], p["retrained"][p["cohorts"][-1]]
    ((274, (246, 218, 190)), 365, 617, (526, (498, 470, 442)))
    """
    last = days - 1 - HORIZON  # labels are observable when T + horizon <= the last event's day
    cohorts = list(range(change_day, last + 1, every)) if cohorts is None else sorted(cohorts)
    if cohorts[-1] > last:
        raise ValueError(f"cohort day {cohorts[-1]}: its labels end after the shop (day {last})")

    def recipe(known_by: int) -> tuple[int, tuple[int, ...]]:
        # The newest grid cutoff whose horizon ended by ``known_by``; the grid runs through the
        # first cohort, so the models share cutoffs (one snapshot serves them all).
        valid = cohorts[0] + GRID_DAYS * ((known_by - HORIZON - cohorts[0]) // GRID_DAYS)
        return valid, tuple(valid - s for s in TRAIN_STEPS)

    return {"cohorts": cohorts, "never": recipe(change_day),
            "retrained": {t: recipe(t) for t in cohorts}}


def measure(*, scenario: str, users: int, days: int, change_day: int, every: int, seed: int,
            folder: Path | None = None, cohorts: list[int] | None = None) -> dict[str, object]:
    """One scenario and seed: per test cohort the ROC-AUC of the never-retrained, the retrained
    and the oracle model (see the module docstring). The shop is simulated and ingested into
    ``folder`` (default: a cache under benchmarks/.data) unless already there."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from churnguard.config import ChurnDefinition
    from churnguard.models.base import fit_model
    from churnguard.models.catalog import build, demo_settings
    from churnguard.simulate import simulate
    from churnguard.snapshots import build_snapshot
    from churnguard.store import Store

    p = plan(days=days, change_day=change_day, every=every, cohorts=cohorts)
    cohorts: list[int] = p["cohorts"]  # type: ignore[assignment]
    never: tuple[int, tuple[int, ...]] = p["never"]  # type: ignore[assignment]
    retrained: dict[int, tuple[int, tuple[int, ...]]] = p["retrained"]  # type: ignore[assignment]
    date = {d: START + dt.timedelta(days=d) for d in range(days + 1)}
    folder = folder or DATA / f"drift_{scenario}_{users}_{days}_{change_day}_{every}_{seed}"
    started = time.perf_counter()
    if not (folder / "sim" / "manifest.json").exists():  # the manifest is written last
        simulate(n_users=users, days=days, seed=seed, out_dir=folder / "sim", scenario=scenario,
                 start=START, horizon_days=HORIZON, cutoffs=[date[t] for t in cohorts],
                 change_day=change_day if scenario == "drift" else None)
    shop = cached_shop(folder, users=users, days=days, seed=seed, scenario=scenario)
    prepared = time.perf_counter() - started
    truth = pd.read_parquet(shop.sim / "truth" / "churn.parquet",
                            columns=["user_id", "cutoff", "p_churn"])
    truth["cutoff"] = pd.to_datetime(truth["cutoff"]).dt.tz_convert(None).astype("datetime64[us]")
    truth = truth.set_index(["user_id", "cutoff"])["p_churn"]

    needed = set(cohorts) | {never[0], *never[1]}
    for valid, train in retrained.values():
        needed |= {valid, *train}
    definition = ChurnDefinition(horizon_days=HORIZON)
    started = time.perf_counter()
    with Store.open(shop.db, read_only=True) as store:
        snap = build_snapshot(store, definition=definition,
                              cutoffs=[dt.datetime.combine(date[d], dt.time())
                                       for d in sorted(needed)])
    snapshot_seconds = time.perf_counter() - started
    cut = snap.index.get_level_values(1)

    def rows(ds: tuple[int, ...] | list[int]):  # noqa: ANN202
        wanted = pd.DatetimeIndex([pd.Timestamp(date[d]) for d in ds])
        return snap.subset(np.asarray(cut.isin(wanted)))

    fits: dict[int, object] = {}
    fit_seconds = 0.0

    def fitted(valid: int, train: tuple[int, ...]):  # noqa: ANN202
        nonlocal fit_seconds
        if valid not in fits:
            t0 = time.perf_counter()
            model = build("gbdt", **{**demo_settings("gbdt"), "seed": seed})
            fits[valid] = fit_model(model, rows(train), validation=rows([valid]))
            fit_seconds += time.perf_counter() - t0
        return fits[valid]

    frozen = fitted(*never)
    out_rows = []
    for t in cohorts:
        test = rows([t])
        y = test.y()
        oracle = truth.reindex(test.index).to_numpy()
        row = {"day": t, "cutoff": date[t].isoformat(), "n": len(test),
               "churn_rate": float(y.mean()),
               "never": float(roc_auc_score(y, frozen.predict_proba(test))),
               "retrained": float(roc_auc_score(y, fitted(*retrained[t]).predict_proba(test))),
               "retrained_validation": date[retrained[t][0]].isoformat(),
               "post_trained": min(retrained[t][1]) >= change_day,
               "oracle": float(roc_auc_score(y, oracle)) if not np.isnan(oracle).any() else None}
        out_rows.append(row)
        print(f"   {scenario} seed {seed} cohort {row['cutoff']}: n {row['n']:,}, churn "
              f"{row['churn_rate']:.3f}, never {row['never']:.4f}, retrained "
              f"{row['retrained']:.4f} (validated {row['retrained_validation']}), oracle "
              f"{row['oracle']:.4f}", flush=True)
    return {"scenario": scenario, "seed": seed, "cohorts": out_rows, "models": len(fits),
            "seconds": {"prepare": prepared, "snapshot": snapshot_seconds, "fit": fit_seconds},
            "never_validation": date[never[0]].isoformat()}


def after(run: dict[str, object]) -> list[dict[str, object]]:
    """The cohorts whose retrained model learnt from post-change cutoffs only."""
    return [r for r in run["cohorts"] if r["post_trained"]]  # type: ignore[index, union-attr]


def summary(runs: list[dict[str, object]], *, args: argparse.Namespace) -> str:
    change = START + dt.timedelta(days=args.change_day)
    lines = [f"{args.users:,} customers, {args.days} days from {START}, change on day "
             f"{args.change_day} ({change}) in `drift`; `default` is the same shop without the "
             f"change (same seeds); seeds {args.seeds}; {HORIZON}-day horizon; catalogue `gbdt` "
             "with its demo settings (learning rate 0.06). Never retrained: validated on "
             f"{runs[0]['never_validation']} (the newest cutoff whose labels were known at the "
             "change), trained on the three cutoffs 28, 56 and 84 days before it. Retrained: the "
             "same recipe on the labels matured by each cohort's cutoff. ROC-AUC per test cohort "
             "(mean over seeds).", ""]
    lines += ["| cohort cutoff | days after change | scenario | n | churn rate | never retrained "
              "| retrained | loss (retrained − never) | oracle |",
              "|---|---|---|---|---|---|---|---|---|"]
    scenarios = sorted({r["scenario"] for r in runs}, key=["drift", "default"].index)
    for scenario in scenarios:
        mine = [r for r in runs if r["scenario"] == scenario]
        for k, row in enumerate(mine[0]["cohorts"]):  # type: ignore[arg-type]
            cells = {key: mean_std([r["cohorts"][k][key] for r in mine])[0]  # type: ignore[index]
                     for key in ("n", "churn_rate", "never", "retrained", "oracle")}
            lines.append(f"| {row['cutoff']} | {row['day'] - args.change_day} | {scenario} | "
                         f"{cells['n']:,.0f} | {cells['churn_rate']:.3f} | {cells['never']:.4f} | "
                         f"{cells['retrained']:.4f} | {cells['retrained'] - cells['never']:+.4f} | "
                         f"{cells['oracle']:.4f} |")
    lines.append("")
    for scenario in scenarios:
        losses, oracle_gap, each = [], [], []
        for r in (r for r in runs if r["scenario"] == scenario):
            post = after(r)
            each += [c["retrained"] - c["never"] for c in post]
            losses.append(float(sum(c["retrained"] - c["never"] for c in post) / len(post)))
            oracle_gap.append(float(sum(c["oracle"] - c["retrained"] for c in post) / len(post)))
        loss, sd = mean_std(losses)
        first = after(next(r for r in runs if r["scenario"] == scenario))[0]
        lines.append(f"- `{scenario}`: on the cohorts from {first['cutoff']} on (the retrained "
                     f"model learnt from post-change cutoffs only), the never-retrained model's "
                     f"AUC is {loss:.4f} ± {sd:.4f} below the retrained one's (mean over those "
                     f"{len(each)} cohort(s), ± std over seeds; per cohort {min(each):+.4f} to "
                     f"{max(each):+.4f}); the oracle leads the retrained model by "
                     f"{mean_std(oracle_gap)[0]:.4f}.")
    seconds = {k: mean_std([r["seconds"][k] for r in runs])[0]  # type: ignore[index]
               for k in ("prepare", "snapshot", "fit")}
    lines.append(f"- Seconds per scenario and seed (mean): simulate + ingest "
                 f"{seconds['prepare']:.0f} (0 when cached), snapshot {seconds['snapshot']:.0f}, "
                 f"{runs[0]['models']} GBDT fits "
                 f"{seconds['fit']:.0f}.")
    lines.append(f"- Labels that carry the change exist from cohorts at "
                 f"{change - dt.timedelta(days=HORIZON - 1)} on (their {HORIZON}-day window "
                 f"reaches the change) and are known from {change + dt.timedelta(days=1)}; "
                 f"wholly changed labels are known from {change + dt.timedelta(days=HORIZON)} "
                 "(`truth/change.json`).")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--change-day", type=int, default=365)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--every", type=int, default=28, help="days between test cohorts")
    parser.add_argument("--scenarios", default="drift,default")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for scenario in args.scenarios.split(","):
            print(f"== {scenario}, seed {seed}", flush=True)
            runs.append(measure(scenario=scenario, users=args.users, days=args.days,
                                change_day=args.change_day, every=args.every, seed=seed))
    body = summary(runs, args=args)
    print()
    print(body)
    if not args.no_write:
        flags = "".join(f" {f} {v}" for f, v, d in (
            ("--users", args.users, 10_000), ("--days", args.days, 730),
            ("--change-day", args.change_day, 365), ("--seeds", args.seeds, "0"),
            ("--every", args.every, 28), ("--scenarios", args.scenarios, "drift,default"))
            if v != d)
        write_section("drift_scenario", "## Drift scenario (issue 18)\n\n" + body,
                      command=f"python benchmarks/bench_drift_scenario.py{flags}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
