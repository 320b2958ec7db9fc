"""Purged training cutoffs: GBDT out of time with training labels that overlap the validation
labels, against training cutoffs whose horizons end on or before the validation cutoff.

    python benchmarks/bench_purge.py [--users 50000] [--days 540] [--seeds 0,1,2]
        [--scenario default] [--no-write]

Per seed, on the cached shop of bench_models.py (default scenario) or bench_behaviour.py
(``--scenario sequence``): the test cutoff T is the newest simulated cutoff whose 90-day horizon
the data covers, the validation cutoff V = T - 90 days. Three ways to fit the default GBDT:

* ``overlapping``: training cutoffs V-90, V-60, V-30 (churnguard before 2026-11-29); their label
  windows share up to 60 days with the validation window;
* ``purged``: V-150, V-120, V-90, each label window ending on or before V (churnguard now);
* ``user holdout``: the overlapping cutoffs, but early stopping and calibration on the validation
  rows of 20% of the customers, whose rows are left out of training.

Reports the GBDT's ROC-AUC on the validation cutoff (its raw score) and on the test cutoff,
test ECE and the trees early stopping kept; writes the section "purge" of RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import churnguard  # noqa: E402, F401  (before torch: OMP_WAIT_POLICY)
from bench_behaviour import _folder  # noqa: E402  (the shops bench_behaviour caches)
from results import HORIZON, cached_shop, mean_std, newest_labelled_cutoff  # noqa: E402
from results import write_section  # noqa: E402

ARMS = ("overlapping", "purged", "user holdout")


def measure(scenario: str, users: int, days: int, seed: int) -> dict[str, dict[str, float]]:
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from churnguard.config import ChurnDefinition
    from churnguard.evaluate import backtest_cutoffs, metrics
    from churnguard.models.gbdt import GBDTChurnModel
    from churnguard.snapshots import build_snapshot
    from churnguard.store import Store

    shop = cached_shop(_folder(scenario, users, days, seed), users=users, days=days, seed=seed,
                       scenario=scenario, cutoffs=[newest_labelled_cutoff(days)])
    truth = pd.read_parquet(shop.sim / "truth" / "churn.parquet", columns=["cutoff"])
    definition = ChurnDefinition(horizon_days=HORIZON)
    day = dt.timedelta(days=1)
    with Store.open(shop.db, read_only=True) as store:
        candidates = [c.to_pydatetime() for c in pd.to_datetime(truth["cutoff"].unique())]
        test, purged, valid = backtest_cutoffs(store, definition=definition, train_cutoffs=3,
                                               candidates=candidates)
        overlapping = [valid - 90 * day, valid - 60 * day, valid - 30 * day]
        snaps = build_snapshot(store, definition=definition,
                               cutoffs=sorted({*overlapping, *purged, valid, test}))
    users_ = snaps.index.get_level_values(0).astype(str)
    cut = snaps.index.get_level_values(1)
    held = np.fromiter((zlib.crc32(f"purge:{u}".encode()) % 5 == 0 for u in users_),
                       dtype=bool, count=len(users_))

    def at(cutoffs: list[dt.datetime]) -> np.ndarray:
        return np.asarray(cut.isin(pd.DatetimeIndex(cutoffs)))

    test_snap = snaps.subset(at([test]))
    arms = {"overlapping": (at(overlapping), at([valid])),
            "purged": (at(purged), at([valid])),
            "user holdout": (at(overlapping) & ~held, at([valid]) & held)}
    out = {}
    for arm, (train_rows, valid_rows) in arms.items():
        train, validation = snaps.subset(train_rows), snaps.subset(valid_rows)
        model = GBDTChurnModel(seed=seed).fit(train, validation=validation)
        scored = metrics("gbdt", test_snap.y(), model.predict_proba(test_snap))
        out[arm] = {"validation_auc": float(roc_auc_score(validation.y(),
                                                           model.predict_raw(validation))),
                    "test_auc": scored.roc_auc, "test_ece": scored.ece,
                    "trees": model.best_iteration_, "n_train": len(train)}
        print(f"   {arm:<13} validation {out[arm]['validation_auc']:.4f}  test "
              f"{scored.roc_auc:.4f}  ECE {scored.ece:.4f}  trees {model.best_iteration_}",
              flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=540)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = []
    for seed in seeds:
        print(f"== {args.scenario}, seed {seed}", flush=True)
        runs.append(measure(args.scenario, args.users, args.days, seed))
    lines = [f"GBDT (default settings), {args.scenario} scenario, {args.users:,} customers, "
             f"{args.days} days, seeds {args.seeds}; horizon {HORIZON} days; mean ± std over "
             "seeds. Validation ROC-AUC is the raw score's on the validation cutoff, the one "
             "early stopping and calibration see.", "",
             "| training cutoffs | validation ROC-AUC | test ROC-AUC | test ECE | trees |",
             "|---|---|---|---|---|"]
    for arm in ARMS:
        cells = [mean_std([r[arm][k] for r in runs])
                 for k in ("validation_auc", "test_auc", "test_ece", "trees")]
        lines.append(f"| {arm} | " + " | ".join(
            f"{m:.4f} ± {s:.4f}" for m, s in cells[:3]) + f" | {cells[3][0]:,.0f} |")
    gain = mean_std([r["purged"]["test_auc"] - r["overlapping"]["test_auc"] for r in runs])
    lines += ["", f"Purged − overlapping, test ROC-AUC: {gain[0]:+.4f} ± {gain[1]:.4f}."]
    body = "\n".join(lines)
    print()
    print(body)
    if not args.no_write:
        flags = "".join(f" {f} {v}" for f, v, d in (
            ("--users", args.users, 50_000), ("--days", args.days, 540),
            ("--seeds", args.seeds, "0,1,2"), ("--scenario", args.scenario, "default"))
            if v != d)
        write_section(f"purge_{args.scenario}", body,
                      command=f"python benchmarks/bench_purge.py{flags}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
