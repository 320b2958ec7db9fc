"""Intervention plan quality against the truth: churnguard's plan vs the oracle and usual practice.

    python benchmarks/bench_plan.py [--users 20000] [--days 720] [--seeds 0,1,2]
                                    [--budget-per-customer 0.25] [--no-write]

Per seed, in a fresh process: simulate the default scenario with exact truth at the plan's
cutoff (the end of the window), ingest, train the champion (gbdt), and build the plan's inputs
(scores, uplift learned from the historical randomised campaigns, value, expected costs,
eligibility: ``churnguard.intervene.plan.plan_inputs``). Under the same budget and the same
eligibility, capacities, values and cost model, three allocations are compared:

* ``churnguard``: the allocation on the estimated uplift (what ``churnguard plan`` contacts);
* ``oracle``: the allocation on the TRUE effects of each action at the cutoff (the simulator's
  ``effect_<action>``, the exact change in P(churn) if the customer gets the action at T);
* ``usual practice``: the highest-risk customers get the 10% coupon, in order of P(churn), until
  the budget is spent.

Each is scored by the truth: true incremental retained value = sum over contacted customers of
(true increase in P(order within 90 days)) x value, and its net margin (x gross margin - expected
cost). Also reported: the out-of-fold Qini of each uplift learner on the campaign customers
(the chosen one, the T-learner and a random ranking).

What the data allows, under the same allocation (rows marked "ceiling", which no real learner can
have: they are fitted on the simulator's true effects):

* ``true average effects``: every customer gets the true mean effect of each action (a perfect
  A/B readout, no individual differences);
* ``fitted on true effects (observables)``: gradient-boosted trees trained, 3-fold out of fold,
  on the exact true effects of every customer in the population from the same point-in-time
  features the learners see: as good as any estimator of individual effects from these features
  could get with unlimited noise-free campaigns;
* ``... + latent state``: the same with the simulator's hidden P(churn) and alive state added.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import mean_std as _mean_std  # noqa: E402
from results import DATA, START, ingest_shop, simulated_shop  # noqa: E402
from results import peak_rss_mib, run_seeds, write_section  # noqa: E402
from truth_accounting import account, true_uplift, usual_practice  # noqa: E402


def _fitted_on_truth(features, effects):
    """Out-of-fold (3-fold) gradient-boosted regression of each action's TRUE effect on the
    features: the best any estimator of individual effects from these features could do."""
    import lightgbm as lgb
    import pandas as pd
    from sklearn.model_selection import KFold, cross_val_predict

    folds = KFold(3, shuffle=True, random_state=0)
    return pd.DataFrame({a: cross_val_predict(
        lgb.LGBMRegressor(n_estimators=300, learning_rate=0.05, num_leaves=31, n_jobs=0,
                          verbose=-1), features, effects[a].to_numpy(), cv=folds)
        for a in effects.columns})


def step(users: int, days: int, seed: int, per_customer: float) -> dict[str, object]:
    import numpy as np
    import pandas as pd

    from churnguard.config import ProjectConfig
    from churnguard.intervene.plan import choose_actions, plan_inputs
    from churnguard.snapshots import build_snapshot
    from churnguard.store import Store
    from churnguard.training import train_model

    folder = DATA / f"plan_{users}_{days}_{seed}"
    end = START + dt.timedelta(days=days)
    sim, _ = simulated_shop(folder, users=users, days=days, seed=seed, cutoffs=[end])
    # A fresh store every run (not cached_shop's): training promotes its champion into it.
    db = folder / "churnguard.duckdb"
    if db.exists():
        db.unlink()
    config = ProjectConfig()
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    timings = {}
    with Store.open(db) as store:
        started = time.perf_counter()
        ingest_shop(store, sim)
        timings["ingest"] = time.perf_counter() - started
        started = time.perf_counter()
        train_model(store, definition=config.churn, model="gbdt", promote=True, progress=say)
        timings["train"] = time.perf_counter() - started
        started = time.perf_counter()
        inputs = plan_inputs(store, config=config, as_of=end, progress=say)
        timings["plan_inputs"] = time.perf_counter() - started
    truth = pd.read_parquet(sim / "truth" / "churn.parquet")
    truth = truth[pd.to_datetime(truth["cutoff"]).dt.date == end].set_index("user_id")
    ids = inputs.customers["user_id"].astype(str)
    # Retention uplift = - change in P(churn); customers the truth does not cover get 0.
    true_effects = true_uplift(truth, ids, inputs.actions)
    budget = per_customer * len(ids)
    started = time.perf_counter()
    choices = {
        "churnguard": choose_actions(inputs, config=config, budget=budget),
        "oracle": choose_actions(inputs, config=config, budget=budget, uplift=true_effects),
        "usual practice": usual_practice(inputs, budget),
    }
    timings["allocate_x2"] = time.perf_counter() - started
    started = time.perf_counter()
    with Store.open(db) as store:
        features = build_snapshot(store, definition=config.churn, cutoffs=[end],
                                  with_labels=False).features.reset_index(drop=True)
    latent = features.assign(
        true_p_churn=truth["p_churn"].reindex(ids).to_numpy(dtype=float),
        alive=truth["alive"].reindex(ids).to_numpy(dtype=float))
    ceilings = {
        "ceiling: true average effects": pd.DataFrame(
            {a: np.full(len(ids), true_effects[a].mean()) for a in inputs.actions}),
        "ceiling: fitted on true effects (observables)": _fitted_on_truth(features, true_effects),
        "ceiling: fitted on true effects + latent state": _fitted_on_truth(latent, true_effects),
    }
    for name, uplift in ceilings.items():
        choices[name] = choose_actions(inputs, config=config, budget=budget, uplift=uplift)
    timings["ceilings"] = time.perf_counter() - started
    value = inputs.customers["value"].to_numpy()
    cost = inputs.cost[inputs.actions].to_numpy()
    est = inputs.uplift[inputs.actions].to_numpy()
    tu = true_effects.to_numpy()
    results = {name: account(choice, true=tu, value=value, cost=cost, estimated=est,
                             gross_margin=config.intervene.gross_margin, actions=inputs.actions)
               for name, choice in choices.items()}
    evaluation = inputs.evaluation.to_json() if inputs.evaluation else None
    # None where the recalibrated estimate is one constant (its out-of-fold slope was 0).
    corr = {a: float(np.corrcoef(est[:, j], tu[:, j])[0, 1]) if est[:, j].std() > 0 else None
            for j, a in enumerate(inputs.actions)}
    return {"seed": seed, "budget": budget, "population": int(len(ids)), "results": results,
            "evaluation": evaluation, "uplift_truth_corr": corr,
            "uplift_source": inputs.uplift_source, "value_model": inputs.value_source,
            "seconds": timings, "peak_rss_mib": peak_rss_mib()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=720)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget-per-customer", type=float, default=0.25)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--step", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step is not None:
        print(json.dumps(step(args.users, args.days, args.step, args.budget_per_customer),
                         default=str))
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = run_seeds(__file__, seeds, ["--users", str(args.users), "--days", str(args.days),
                                       "--budget-per-customer", str(args.budget_per_customer)],
                     summary=lambda run: "\n".join(
                         f"   {name:<15} retained value {r['true_retained_value']:10.1f}  net "
                         f"{r['true_net_margin']:9.1f}  contacted {r['contacted']}"
                         for name, r in run["results"].items()))
    names = list(runs[0]["results"])
    table = {n: {k: _mean_std([r["results"][n][k] for r in runs])
                 for k in ("contacted", "spend", "true_saves", "estimated_saves",
                           "true_retained_value", "true_net_margin")} for n in names}
    lines = [
        f"Default scenario, {args.users:,} customers, {args.days} days, seeds "
        f"{', '.join(map(str, seeds))}; plan at the end of the window on the population "
        f"({', '.join(str(r['population']) for r in runs)} customers); budget "
        f"{args.budget_per_customer} per customer in the population "
        f"({', '.join(format(r['budget'], ',.0f') for r in runs)}). Same eligibility, capacities, "
        "values and cost model for every allocation; scored by the simulator's exact effects. "
        "Mean ± std over seeds.",
        "",
        "| allocation | contacted | expected spend | true saves | true retained value | "
        "true net margin | / oracle | / usual practice |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def ratio(n: str, to: str) -> tuple[float, float]:
        return _mean_std([r["results"][n]["true_retained_value"]
                          / r["results"][to]["true_retained_value"] for r in runs])

    for n in names:
        t, vs_oracle, vs_usual = table[n], ratio(n, "oracle"), ratio(n, "usual practice")
        lines.append(f"| {n} | {t['contacted'][0]:,.0f} | {t['spend'][0]:,.0f} | "
                     f"{t['true_saves'][0]:.1f} ± {t['true_saves'][1]:.1f} | "
                     f"{t['true_retained_value'][0]:,.0f} ± {t['true_retained_value'][1]:,.0f} | "
                     f"{t['true_net_margin'][0]:,.0f} ± {t['true_net_margin'][1]:,.0f} | "
                     f"{vs_oracle[0]:.3f} ± {vs_oracle[1]:.3f} | "
                     f"{vs_usual[0]:.2f} ± {vs_usual[1]:.2f} |")
    ratio_oracle, ratio_usual = ratio("churnguard", "oracle"), ratio("churnguard", "usual practice")
    lines += ["", f"churnguard / oracle true retained value: {ratio_oracle[0]:.3f} ± "
              f"{ratio_oracle[1]:.3f} (target ≥ 0.85: "
              f"{'met' if ratio_oracle[0] >= 0.85 else 'MISSED'}); churnguard / usual practice: "
              f"{ratio_usual[0]:.2f} ± {ratio_usual[1]:.2f} (target ≥ 1.5: "
              f"{'met' if ratio_usual[0] >= 1.5 else 'MISSED'}).", ""]
    if runs[0]["evaluation"]:
        lines += ["Uplift learners, out-of-fold Qini on the historical campaign customers "
                  "(mean over seeds; chosen per seed: "
                  + ", ".join(r["evaluation"]["chosen"] for r in runs) + "):", "",
                  "| learner | Qini | AUUC | uplift@30% |", "|---|---|---|---|"]
        for row in runs[0]["evaluation"]["learners"]:
            n = row["name"]
            vals = {k: _mean_std([next(x[k] for x in r["evaluation"]["learners"]
                                       if x["name"] == n) for r in runs])
                    for k in ("qini", "auuc", "uplift_at_30")}
            lines.append(f"| {n} | {vals['qini'][0]:.4f} ± {vals['qini'][1]:.4f} | "
                         f"{vals['auuc'][0]:.4f} | {vals['uplift_at_30'][0]:+.4f} |")
        def corr(a: str) -> str:
            values = [r["uplift_truth_corr"][a] for r in runs]
            known = [v for v in values if v is not None]
            text = f"{a} {_mean_std(known)[0]:.2f}" if known else f"{a} -"
            constant = len(values) - len(known)
            return text + (f" (one constant estimate in {constant} of {len(values)} seeds)"
                           if constant else "")

        lines += ["", "Correlation of the chosen learner's estimates with the true effects at the "
                  "plan cutoff: " + ", ".join(corr(a) for a in runs[0]["uplift_truth_corr"])
                  + "."]
    secs = {k: _mean_std([r["seconds"][k] for r in runs])[0] for k in runs[0]["seconds"]}
    lines += ["", "Seconds per seed (mean): " + ", ".join(f"{k} {v:.0f}" for k, v in secs.items())
              + f"; peak RSS {max(r['peak_rss_mib'] for r in runs):.0f} MiB."]
    body = "\n".join(lines)
    print()
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_plan.py" + "".join(
            f" {flag} {value}" for flag, value, default in
            (("--users", args.users, 20_000), ("--days", args.days, 720),
             ("--seeds", args.seeds, "0,1,2"),
             ("--budget-per-customer", args.budget_per_customer, 0.25)) if value != default)
        write_section("plan", body, command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
