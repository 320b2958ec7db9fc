"""What fine-tuning the MiniLM text encoder end to end adds to a behaviour model, and what it costs.

    python benchmarks/bench_text_tuning.py [--users 5000] [--days 540] [--seeds 0,1,2]
        [--d-model 32] [--max-len 64] [--epochs 4] [--no-write]

Per seed, on a simulated shop of the default scenario (its reviews and tickets follow the
customer's experience: late or defective deliveries give bad reviews and tickets), with the
backtest's cutoffs (3 purged training cutoffs, validation, test; 90-day horizon):

1. ``frozen``: the supervised GRU (``behaviour_gru``: no pretraining, so only the text differs)
   reading the cached, frozen MiniLM vectors of the texts;
2. ``tuned``: the same network, same seed, with ``tune_text=True``: its own copy of MiniLM is
   fine-tuned by the churn loss (``text_lr`` 2e-5);
3. ``gbdt``: the default GBDT on the engineered features (which include text sentiment), for
   scale.

Reported: test ROC-AUC and PR-AUC, fit time, scoring throughput on the test cutoff (customers per
second, the cache already built), pickled size. Writes the section "text_tuning" of RESULTS.md.
The shops are cached in benchmarks/.data/text_tuning_USERS_DAYS_SEED.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import churnguard  # noqa: E402, F401  (before torch: OMP_WAIT_POLICY)
from results import DATA, HORIZON, cached_shop, mean_std, newest_labelled_cutoff  # noqa: E402
from results import peak_rss_mib, write_section  # noqa: E402

VARIANTS = (("frozen", "GRU, frozen MiniLM vectors"),
            ("tuned", "GRU, MiniLM fine-tuned end to end"),
            ("gbdt", "gbdt (engineered features)"))


def measure(*, users: int, days: int, seed: int, d_model: int, max_len: int,
            epochs: int) -> dict[str, dict[str, float]]:
    from churnguard.config import ChurnDefinition
    from churnguard.evaluate import backtest_cutoffs
    from churnguard.snapshots import build_snapshot
    from churnguard.store import Store

    shop = cached_shop(DATA / f"text_tuning_{users}_{days}_{seed}", users=users, days=days,
                       seed=seed, cutoffs=[newest_labelled_cutoff(days)])
    definition = ChurnDefinition(horizon_days=HORIZON)
    # The snapshots' sequence cache reads the store while the models fit and score.
    with Store.open(shop.db, read_only=True) as store:
        test, train_cutoffs, valid = backtest_cutoffs(store, definition=definition)
        snaps = build_snapshot(store, definition=definition,
                               cutoffs=[*train_cutoffs, valid, test])
        return _fit_and_score(snaps, train_cutoffs=train_cutoffs, valid=valid, test=test,
                              seed=seed, d_model=d_model, max_len=max_len, epochs=epochs)


def _fit_and_score(snaps, *, train_cutoffs: list, valid: object,  # noqa: ANN001
                   test: object, seed: int, d_model: int, max_len: int,
                   epochs: int) -> dict[str, dict[str, float]]:
    import numpy as np
    import pandas as pd

    from churnguard.evaluate import pr_auc, roc_auc
    from churnguard.models.behaviour.model import BehaviourChurnModel
    from churnguard.models.gbdt import GBDTChurnModel

    cut = snaps.index.get_level_values(1)

    def rows(cutoffs: list) -> object:
        return snaps.subset(np.asarray(cut.isin(pd.DatetimeIndex(cutoffs))))

    train, validation, tested = rows(train_cutoffs), rows([valid]), rows([test])
    y = tested.y()
    print(f"   {len(train):,} training, {len(validation):,} validation, {len(tested):,} test rows",
          flush=True)
    models = {
        "frozen": BehaviourChurnModel(encoder="gru", pretrain="none", d_model=d_model,
                                      max_len=max_len, epochs=epochs, seed=seed),
        "tuned": BehaviourChurnModel(encoder="gru", pretrain="none", d_model=d_model,
                                     max_len=max_len, epochs=epochs, seed=seed, tune_text=True),
        "gbdt": GBDTChurnModel(seed=seed),
    }
    out: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        started = time.perf_counter()
        model.fit(train, validation=validation)
        fit_seconds = time.perf_counter() - started
        model.predict_proba(tested)  # the first call builds what scoring reads (texts, caches)
        started = time.perf_counter()
        p = model.predict_proba(tested)
        score_seconds = time.perf_counter() - started
        out[name] = {"roc_auc": float(roc_auc(y, p)), "pr_auc": float(pr_auc(y, p)),
                     "fit_s": fit_seconds, "per_s": len(tested) / score_seconds,
                     "mib": len(pickle.dumps(model)) / 2**20,
                     "epochs": float(len(getattr(model, "history_", [])))}
        print(f"   {name:<7} ROC-AUC {out[name]['roc_auc']:.4f}  fit {fit_seconds:,.0f} s  "
              f"scoring {out[name]['per_s']:,.0f}/s  {out[name]['mib']:,.1f} MiB", flush=True)
    out["shop"] = {"n_test": float(len(tested)), "base_rate": float(y.mean())}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=540)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        print(f"== seed {seed}", flush=True)
        runs.append(measure(users=args.users, days=args.days, seed=seed, d_model=args.d_model,
                            max_len=args.max_len, epochs=args.epochs))

    def cell(name: str, key: str, fmt: str) -> str:
        mean, std = mean_std([r[name][key] for r in runs])
        return f"{mean:{fmt}} ± {std:{fmt}}" if len(runs) > 1 else f"{mean:{fmt}}"

    gain = mean_std([r["tuned"]["roc_auc"] - r["frozen"]["roc_auc"] for r in runs])
    slower = mean_std([r["tuned"]["fit_s"] / r["frozen"]["fit_s"] for r in runs])
    n_test = mean_std([r["shop"]["n_test"] for r in runs])[0]
    lines = [f"Default scenario, {args.users:,} customers, {args.days} days, seeds {args.seeds}; "
             f"out of time (the test cutoff, {HORIZON}-day horizon, {n_test:,.0f} customers); "
             f"GRU d = {args.d_model} over the newest {args.max_len} events, at most "
             f"{args.epochs} epoch{'s' if args.epochs != 1 else ''}, no pretraining; mean ± "
             "std over seeds.", "",
             "| model | ROC-AUC | PR-AUC | fit (s) | scoring (customers/s) | pickled (MiB) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {label} | {cell(key, 'roc_auc', '.4f')} | {cell(key, 'pr_auc', '.4f')} | "
              f"{cell(key, 'fit_s', ',.0f')} | {cell(key, 'per_s', ',.0f')} | "
              f"{cell(key, 'mib', ',.1f')} |" for key, label in VARIANTS]
    lines += ["",
              f"- Fine-tuning MiniLM changes the GRU's ROC-AUC by {gain[0]:+.4f} ± {gain[1]:.4f} "
              f"and makes its fit {slower[0]:.1f}x ± {slower[1]:.1f}x as long.",
              f"- Peak RSS of the run: {peak_rss_mib():,.0f} MiB."]
    body = "\n".join(lines)
    print()
    print(body)
    if not args.no_write:
        flags = "".join(f" {f} {v}" for f, v, d in (
            ("--users", args.users, 5_000), ("--days", args.days, 540),
            ("--seeds", args.seeds, "0,1,2"), ("--d-model", args.d_model, 32),
            ("--max-len", args.max_len, 64), ("--epochs", args.epochs, 4)) if v != d)
        write_section("text_tuning", body, command=f"python benchmarks/bench_text_tuning.py{flags}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
