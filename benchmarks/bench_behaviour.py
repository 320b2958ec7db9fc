"""Behaviour models: out-of-time quality on the default and sequence scenarios, label efficiency,
scoring throughput, pretraining time and peak memory.

    python benchmarks/bench_behaviour.py [--users 50000] [--days 540] [--seeds 0,1,2]
        [--scenarios default,sequence] [--fractions 0.01,0.1] [--no-write] [--reuse]
        [--only SCENARIO:SEED]

Per (scenario, seed), in a fresh process (so its peak RSS is its own):

1. simulate the scenario (the default scenario reuses bench_models.py's data folders) and ingest;
2. pretrain the encoder without labels (CoLES) on every customer's events before the validation
   cutoff -- the newest moment the models may learn from -- timed;
3. backtest (90-day horizon, 3 purged training cutoffs + validation + test): recency, btyd,
   gbdt, GRU and transformer supervised from scratch (``behaviour_gru``,
   ``behaviour_transformer``), the pretrained GRU fine-tuned (``behaviour``), the frozen
   pretrained vectors added to the GBDT
   (``behaviour+gbdt``), the stacked ensemble of all of them (its combiner fitted on the
   validation cutoff) and the oracle (the simulator's true P(churn));
4. label efficiency: with a share of the labelled customers (the same users at every cutoff,
   training and validation alike), fine-tune the pretrained encoder and train the same network
   from scratch; test on the whole test cutoff;
5. scoring throughput (customers per second, threads = cores) of the fitted GRU and transformer on
   the test cutoff's sequences (the cache already built), by batch of similar lengths.

The driver writes mean ± std over seeds to RESULTS.md (section "behaviour").

Inside a step, the pretrained encoder, each model's backtest (fitted model, metrics and
predictions) and each label share's scores are kept beside the store (``pretrained_seedN``,
``fitted_seedN``) as they finish, so a step that is stopped resumes where it stopped; delete
those folders to refit from scratch.

One step takes hours on 2 cores, so every step's figures are also kept in
``benchmarks/.data/behaviour_runs/SCENARIO_USERS_DAYS_SEED.json`` with the commit and the time it
was measured at. ``--reuse`` takes finished steps from there instead of rerunning them (the table
then lists which commit each step ran at), so the full table can be gathered over several
sittings; ``--only SCENARIO:SEED`` runs (and keeps) a single step without writing the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import sys
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import DATA, HORIZON, cached_shop, newest_labelled_cutoff  # noqa: E402
from results import peak_rss_mib, run_step, write_section  # noqa: E402

METRICS = ("roc_auc", "pr_auc", "ece")
ORDER = ("oracle", "recency", "btyd", "gbdt", "behaviour_gru", "behaviour_transformer",
         "behaviour", "behaviour+gbdt", "ensemble")
LABELS = {
    "oracle": "oracle (true P(churn))", "recency": "recency", "btyd": "btyd", "gbdt": "gbdt",
    "behaviour_gru": "GRU supervised", "behaviour_transformer": "transformer supervised",
    "behaviour": "pretrained + fine-tuned (GRU)", "behaviour+gbdt": "embeddings + gbdt",
    "ensemble": "stacked ensemble",
}
BEHAVIOUR = ("behaviour_gru", "behaviour_transformer", "behaviour", "behaviour+gbdt", "ensemble")


def _folder(scenario: str, users: int, days: int, seed: int) -> Path:
    if scenario == "default":
        return DATA / f"models_{users}_{days}_{seed}"
    return DATA / f"behaviour_{scenario}_{users}_{days}_{seed}"


def _store(scenario: str, users: int, days: int, seed: int) -> tuple[Path, Path, float]:
    db, sim, seconds = cached_shop(_folder(scenario, users, days, seed), users=users, days=days,
                                   seed=seed, scenario=scenario,
                                   cutoffs=[newest_labelled_cutoff(days)])
    return db, sim, sum(seconds.values())


RUNS = DATA / "behaviour_runs"


def _run_file(scenario: str, users: int, days: int, seed: int) -> Path:
    return RUNS / f"{scenario}_{users}_{days}_{seed}.json"


def _commit() -> str:
    import subprocess

    try:
        head = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain", "--",
                                "../src", "."], capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+uncommitted changes" if dirty else "")


def _run(scenario: str, seed: int, args: argparse.Namespace) -> dict:
    """One (scenario, seed) step: from the kept file with --reuse, else run and keep it."""
    kept = _run_file(scenario, args.users, args.days, seed)
    if args.reuse and kept.exists():
        run = json.loads(kept.read_text(encoding="utf-8"))
        if run.get("fractions") == args.fractions:
            print(f"   (kept from {run.get('measured_at', '?')}, commit "
                  f"{run.get('commit', '?')})", flush=True)
            return run
    started = time.perf_counter()
    commit = _commit()
    run = run_step([str(Path(__file__).resolve()), "--users", str(args.users),
                    "--days", str(args.days), "--fractions", args.fractions,
                    "--step", f"{scenario}:{seed}"])
    run["wall_seconds"] = time.perf_counter() - started
    run.update(commit=commit, fractions=args.fractions,
               measured_at=f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    RUNS.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(run, default=str), encoding="utf-8")
    return run


def _keep(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (a step may be killed at any moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _share(index, fraction: float, seed: int):  # noqa: ANN001
    import numpy as np

    users = index.get_level_values(0).astype(str)
    codes = np.fromiter((zlib.crc32(f"labels:{seed}:{u}".encode()) % 100_000 for u in users),
                        dtype=np.int64, count=len(users))
    return codes < fraction * 100_000


def step(scenario: str, users: int, days: int, seed: int, fractions: list[float]) -> dict:
    import numpy as np
    import pandas as pd
    import torch

    from churnguard.config import ChurnDefinition
    from churnguard.evaluate import backtest, backtest_cutoffs, metrics
    from churnguard.models.behaviour.encoders import EncoderConfig
    from churnguard.models.behaviour.model import BehaviourChurnModel, BehaviourGBDTModel, embed
    from churnguard.models.behaviour.pretrain import PretrainConfig, pretrain
    from churnguard.models.ensemble import StackedEnsemble
    from churnguard.models.gbdt import GBDTChurnModel
    from churnguard.sequences.cache import sequences_of
    from churnguard.snapshots import build_snapshot
    from churnguard.store import Store

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    db, sim, t_data = _store(scenario, users, days, seed)
    truth = pd.read_parquet(sim / "truth" / "churn.parquet",
                            columns=["user_id", "cutoff", "p_churn"])
    definition = ChurnDefinition(horizon_days=HORIZON)
    out: dict = {"scenario": scenario, "seed": seed, "data_seconds": t_data}
    with Store.open(db) as store:
        candidates = [c.to_pydatetime() for c in pd.to_datetime(truth["cutoff"].unique())]
        test, train_cutoffs, validation = backtest_cutoffs(
            store, definition=definition, train_cutoffs=3, candidates=candidates)

        # Pretraining, without labels, on events before the validation cutoff. What each stage
        # fitted is kept beside the store, so a step cut short resumes where it stopped.
        encoder_dir = db.parent / f"pretrained_seed{seed}"
        kept_pretraining = encoder_dir / "bench_pretrain.json"
        if kept_pretraining.exists():
            out["pretrain"] = json.loads(kept_pretraining.read_text(encoding="utf-8"))
            say(f"pretraining: kept from an earlier run ({out['pretrain']['path']})")
        else:
            started = time.perf_counter()
            rss_before = peak_rss_mib()
            config = PretrainConfig(encoder=EncoderConfig(kind="gru"), epochs=4, seed=seed,
                                    max_customers=30_000)
            result = pretrain(store, cutoff=validation, config=config, out_dir=encoder_dir,
                              progress=say)
            out["pretrain"] = {"seconds": time.perf_counter() - started,
                               "train_seconds": result.seconds, "customers": result.n_customers,
                               "epochs": len(result.history), "best_epoch": result.best_epoch,
                               "seconds_per_epoch": float(np.mean([h["seconds"]
                                                                   for h in result.history])),
                               "history": result.history, "peak_rss_mib": peak_rss_mib(),
                               "peak_rss_before_mib": rss_before, "path": str(result.path)}
            _keep(kept_pretraining, json.dumps(out["pretrain"], default=str).encode())
        path = out["pretrain"]["path"]

        # One backtest per model, each kept when done (its fitted model, metrics, predictions).
        models = ["recency", "btyd", "gbdt", "behaviour_gru", "behaviour_transformer",
                  BehaviourChurnModel(pretrain=path, seed=seed),
                  BehaviourGBDTModel(pretrain=path, seed=seed)]
        fitted_dir = db.parent / f"fitted_seed{seed}"
        parts = {}
        for spec in models:
            name = spec if isinstance(spec, str) else spec.name
            kept = fitted_dir / f"{name}.pkl"
            if kept.exists():
                parts[name] = pickle.loads(kept.read_bytes())
                out.setdefault("kept", []).append(name)
                say(f"{name}: kept from an earlier run")
                continue
            parts[name] = backtest(store, definition=definition,
                                   train_cutoffs=train_cutoffs + [validation], test_cutoff=test,
                                   models=[spec], truth=truth, progress=say)
            _keep(kept, pickle.dumps(parts[name]))
        first = parts["recency"]
        fitted = {name: part.models[name] for name, part in parts.items()}
        rows = {m.name: m.to_dict() for part in parts.values() for m in part.metrics}
        out["seconds"] = {name: part.seconds[name] for name, part in parts.items()}
        out["n_test"], out["base_rate"] = first.n_test, first.base_rate
        out["cutoffs"] = {"test": str(test.date()), "validation": str(validation.date()),
                          "train": [str(c.date()) for c in train_cutoffs]}
        out["epochs"] = {n: len(fitted[n].history_) for n in
                         ("behaviour_gru", "behaviour_transformer", "behaviour")}

        # The ensemble's combiner on the validation cutoff, scored on the test cutoff.
        snaps = build_snapshot(store, definition=definition, cutoffs=[validation, test])
        cut = snaps.index.get_level_values(1)
        valid_snap = snaps.subset(np.asarray(cut == pd.Timestamp(validation)))
        test_snap = snaps.subset(np.asarray(cut == pd.Timestamp(test)))
        members = {n: m for n, m in fitted.items() if n != "recency"}
        ensemble = StackedEnsemble.from_fitted(members, valid_snap)
        y_test = test_snap.y()
        rows["ensemble"] = metrics("ensemble", y_test,
                                   ensemble.predict_proba(test_snap)).to_dict()
        out["ensemble_weights"] = ensemble.weights_
        out["models"] = rows

        # Label efficiency.
        every = build_snapshot(store, definition=definition, cutoffs=[*train_cutoffs, validation])
        cut = every.index.get_level_values(1)
        kept_efficiency = fitted_dir / "efficiency.json"
        efficiency = (json.loads(kept_efficiency.read_text(encoding="utf-8"))
                      if kept_efficiency.exists() else {})
        for fraction in fractions:
            if str(fraction) in efficiency:
                say(f"{fraction:.0%} labels: kept from an earlier run")
                continue
            keep = _share(every.index, fraction, seed)
            train_f = every.subset(keep & np.asarray(cut != pd.Timestamp(validation)))
            valid_f = every.subset(keep & np.asarray(cut == pd.Timestamp(validation)))
            scores = {}
            for label, model in (("pretrained", BehaviourChurnModel(pretrain=path, seed=seed)),
                                 ("scratch", BehaviourChurnModel(pretrain="none", seed=seed)),
                                 ("gbdt", GBDTChurnModel(seed=seed))):
                t0 = time.perf_counter()
                try:
                    model.fit(train_f, validation=valid_f)
                    scores[label] = metrics(label, y_test,
                                            model.predict_proba(test_snap)).roc_auc
                except ValueError as exc:  # e.g. one class only at 1% of a small shop
                    say(f"{fraction:.0%} {label}: {exc}")
                    scores[label] = float("nan")
                say(f"{fraction:.0%} labels, {label}: ROC-AUC {scores[label]:.4f} "
                    f"({time.perf_counter() - t0:.0f} s)")
            efficiency[str(fraction)] = {"n_train": len(train_f), "n_validation": len(valid_f),
                                         **scores}
            _keep(kept_efficiency, json.dumps(efficiency).encode())
        efficiency["1.0"] = {"n_train": first.n_train, "n_validation": first.n_validation,
                             "pretrained": rows["behaviour"]["roc_auc"],
                             "scratch": rows["behaviour_gru"]["roc_auc"],
                             "gbdt": rows["gbdt"]["roc_auc"]}
        out["label_efficiency"] = efficiency

        # Scoring throughput on the test cutoff's sequences (cache built), all cores.
        torch.set_num_threads(os.cpu_count() or 1)
        throughput = {}
        for name in ("behaviour_gru", "behaviour_transformer"):
            model = fitted[name]
            seqs = sequences_of(test_snap, max_len=model.max_len, texts=model.use_text)
            embed(model.network_.encoder, seqs, max_len=model.max_len, head=model.network_)
            t0 = time.perf_counter()
            embed(model.network_.encoder, seqs, max_len=model.max_len, head=model.network_)
            seconds = time.perf_counter() - t0
            throughput[name] = {"customers": len(seqs), "seconds": seconds,
                                "per_second": len(seqs) / seconds,
                                "mean_length": float(np.minimum(seqs.lengths,
                                                                model.max_len).mean())}
            say(f"{name}: {throughput[name]['per_second']:.0f} customers/s")
        out["throughput"] = throughput
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    import numpy as np

    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _cell(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.4f} ± {pair[1]:.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=540)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--scenarios", default="default,sequence")
    parser.add_argument("--fractions", default="0.01,0.1")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--reuse", action="store_true",
                        help="take finished steps from benchmarks/.data/behaviour_runs")
    parser.add_argument("--only", default=None, metavar="SCENARIO:SEED",
                        help="run and keep this one step; write no table")
    parser.add_argument("--step", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    fractions = [float(f) for f in args.fractions.split(",") if f]
    if args.step is not None:
        scenario, seed = args.step.split(":")
        print(json.dumps(step(scenario, args.users, args.days, int(seed), fractions),
                         default=str))
        return 0
    if args.only is not None:
        scenario, seed = args.only.split(":")
        run = _run(scenario, int(seed), args)
        print(json.dumps(run["models"], indent=1))
        return 0

    seeds = [int(s) for s in args.seeds.split(",")]
    scenarios = args.scenarios.split(",")
    runs: dict[str, list[dict]] = {s: [] for s in scenarios}
    for scenario in scenarios:
        for seed in seeds:
            print(f"== {scenario}, seed {seed}", flush=True)
            run = _run(scenario, seed, args)
            runs[scenario].append(run)
            for name in ORDER:
                if name in run["models"]:
                    m = run["models"][name]
                    print(f"   {name:<22} ROC-AUC {m['roc_auc']:.4f}  ECE {m['ece']:.4f}",
                          flush=True)
            print(f"   ({run['wall_seconds']:.0f} s)", flush=True)

    lines = [
        f"{args.users:,} customers, {args.days} days, seeds {', '.join(map(str, seeds))}; "
        f"horizon {HORIZON} days, 3 training cutoffs 30 days apart, purged (each label window "
        "ends on or before the validation cutoff), + validation + test (out of time). Mean ± "
        "std over seeds. ECE: 10 equal-frequency bins.", "",
        "| model | " + " | ".join(f"{s} {m}" for s in scenarios
                                  for m in ("ROC-AUC", "PR-AUC", "ECE")) + " |",
        "|---|" + "---|" * (3 * len(scenarios)),
    ]
    table = {}
    for scenario in scenarios:
        table[scenario] = {n: {k: _mean_std([r["models"][n][k] for r in runs[scenario]])
                               for k in METRICS}
                           for n in ORDER if n in runs[scenario][0]["models"]}
    for name in ORDER:
        if all(name in table[s] for s in scenarios):
            lines.append(f"| {LABELS[name]} | " + " | ".join(
                _cell(table[s][name][k]) for s in scenarios for k in METRICS) + " |")
    lines.append("")
    origins = sorted({(r.get("measured_at", "?"), r.get("commit", "?"), s, r["seed"])
                      for s in scenarios for r in runs[s]})
    lines.append("Steps (scenario, seed: when, commit): " + "; ".join(
        f"{s} {seed}: {when}, {commit}" for when, commit, s, seed in origins) + ".")
    lines.append("")
    for scenario in scenarios:
        t = table[scenario]
        best = max((n for n in BEHAVIOUR if n in t), key=lambda n: t[n]["roc_auc"][0])
        delta = t[best]["roc_auc"][0] - t["gbdt"]["roc_auc"][0]
        need = 0.01 if scenario == "sequence" else 0.0
        std = max(t[best]["roc_auc"][1], t["gbdt"]["roc_auc"][1])
        if need:
            met = delta >= need and (len(seeds) == 1 or delta > std)
        else:
            met = delta >= -std
        target = "≥ +0.01 beyond one std" if need else "≥ level (within one std)"
        single = max((n for n in BEHAVIOUR if n in t and n != "ensemble"),
                     key=lambda n: t[n]["roc_auc"][0])
        lines.append(f"- {scenario}: best behaviour variant {LABELS[best]} "
                     f"{t[best]['roc_auc'][0]:.4f} vs gbdt {t['gbdt']['roc_auc'][0]:.4f} "
                     f"({delta:+.4f}; target {target}: {'met' if met else 'MISSED'}). Without "
                     f"the stacked ensemble (which also holds gbdt and btyd): {LABELS[single]} "
                     f"{t[single]['roc_auc'][0] - t['gbdt']['roc_auc'][0]:+.4f}.")
    lines += ["", "Label efficiency (ROC-AUC on the whole test cutoff; the share of labelled "
              "customers applies to training and validation alike):", "",
              "| scenario | labels | training rows | pretrained + fine-tuned | from scratch | "
              "gbdt | pretrained − scratch |", "|---|---|---|---|---|---|---|"]
    for scenario in scenarios:
        for fraction in [*map(str, fractions), "1.0"]:
            cells = {k: _mean_std([r["label_efficiency"][fraction][k] for r in runs[scenario]])
                     for k in ("pretrained", "scratch", "gbdt")}
            n_train = _mean_std([r["label_efficiency"][fraction]["n_train"]
                                 for r in runs[scenario]])[0]
            lines.append(f"| {scenario} | {float(fraction):.0%} | {n_train:,.0f} | "
                         f"{_cell(cells['pretrained'])} | {_cell(cells['scratch'])} | "
                         f"{_cell(cells['gbdt'])} | "
                         f"{cells['pretrained'][0] - cells['scratch'][0]:+.4f} |")
    lines += [""]
    for scenario in scenarios:
        # What "pretrained beats scratch by 0.02 with 10% of labels" asks, against what the
        # models reach with every label.
        at = {f: {k: _mean_std([r["label_efficiency"][f][k] for r in runs[scenario]])[0]
                  for k in ("pretrained", "scratch", "gbdt")} for f in ("0.1", "1.0")
              if all(f in r["label_efficiency"] for r in runs[scenario])}
        if len(at) == 2:
            needed = at["0.1"]["scratch"] + 0.02
            ceiling = max(at["1.0"].values())
            lines.append(
                f"- {scenario}, 10% of labels: the target (pretrained ≥ scratch + 0.02) asks "
                f"for {needed:.4f}, {'above' if needed > ceiling else 'below'} the best that "
                f"pretrained, scratch or gbdt reaches with every label ({ceiling:.4f}); the other "
                f"90% of the labels lift the best model only "
                f"{ceiling - at['0.1']['scratch']:+.4f} over scratch at 10%.")
    for scenario in scenarios:
        rs = runs[scenario]
        thr = {n: _mean_std([r["throughput"][n]["per_second"] for r in rs])
               for n in ("behaviour_gru", "behaviour_transformer")}
        mean_len = _mean_std([r["throughput"]["behaviour_gru"]["mean_length"] for r in rs])[0]
        pre = rs[0]["pretrain"]
        secs = {k: _mean_std([r["seconds"].get(k, float("nan")) for r in rs])[0]
                for k in rs[0]["seconds"]}
        lines.append(
            f"- {scenario}: scoring throughput ({os.cpu_count()} threads, test cutoff, "
            f"{rs[0]['throughput']['behaviour_gru']['customers']:,} customers, mean length "
            f"{mean_len:.0f}): GRU {thr['behaviour_gru'][0]:,.0f} customers/s, transformer "
            f"{thr['behaviour_transformer'][0]:,.0f} customers/s. Pretraining (seed "
            f"{rs[0]['seed']}): {pre['customers']:,} customers, {pre['epochs']} epoch(s) at "
            f"{pre['seconds_per_epoch']:.0f} s each (best epoch {pre['best_epoch'] + 1}), "
            f"{pre['seconds']:.0f} s with the sequence cache. Fit + test seconds per seed: "
            + ", ".join(f"{k} {v:.0f}" for k, v in secs.items())
            + f". Whole step per seed {_mean_std([r['wall_seconds'] for r in rs])[0]:.0f} s"
            + ("" if not any(r.get("kept") for r in rs) else
               " (a resumed step counts only its last run; its kept models are timed above)")
            + "; "
            f"peak RSS {max(r['peak_rss_mib'] for r in rs):,.0f} MiB. Fine-tuning epochs "
            f"(early stopping): {rs[0]['epochs']}. Ensemble weights (seed {rs[0]['seed']}): "
            + ", ".join(f"{k} {v:.2f}" for k, v in rs[0]["ensemble_weights"].items()) + ".")
    body = "\n".join(lines)
    print()
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_behaviour.py" + "".join(
            f" {flag} {value}" for flag, value, default in
            (("--users", args.users, 50_000), ("--days", args.days, 540),
             ("--seeds", args.seeds, "0,1,2"), ("--scenarios", args.scenarios,
                                               "default,sequence"),
             ("--fractions", args.fractions, "0.01,0.1")) if value != default) + (
            " --reuse" if args.reuse else "")
        write_section("behaviour", body, command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
