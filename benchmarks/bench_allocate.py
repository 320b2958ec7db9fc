"""Allocation under a budget: Lagrangian at 1,000,000 customers, and exact vs Lagrangian vs greedy.

    python benchmarks/bench_allocate.py [--customers 1000000] [--small 20000] [--seed 0]
                                        [--plain-seconds 600] [--no-write]

A realistic problem (seeded): six actions (e-mail at 0.05 and SMS at 0.25 per contact, a phone
call at 4.00 per contact limited to 500 calls, and 5 %, 10 % and 20 % coupons whose expected cost
is the discount on the customer's basket times their chance of redeeming it). A customer's margin
for an action is the churn probability it removes times the margin at stake, less the action's
expected cost; effects are heterogeneous (coupons work on price-sensitive customers) and some are
negative. The budget is a quarter of what giving every customer their best action would spend.

Each step runs in a fresh process (so its peak RSS is its own): ``big`` times
``allocate(method="lagrangian")`` on the large problem; ``small`` solves the small problem with
``method="exact"``, with ``method="lagrangian"``, with HiGHS alone on every positive pair (what
``method="exact"`` would be without the Lagrangian first; default HiGHS gap 1e-4, stopped after
``--plain-seconds``, 0 to skip) and by the naive alternative, "sort all (customer, action) pairs by
margin per cost and fill greedily". The section "allocate" of RESULTS.md gets the figures.
Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import peak_rss_mib, run_step, write_section  # noqa: E402

ACTIONS = ("email", "sms", "call", "coupon_5", "coupon_10", "coupon_20")
CALLS = 500
BUDGET_SHARE = 0.25


def make_problem(n: int, seed: int) -> dict[str, object]:
    """margin, cost (n × 6), budget and capacity of a realistic retention campaign."""
    rng = np.random.default_rng(seed)
    at_stake = rng.lognormal(np.log(30.0), 1.0, n)        # margin kept if the customer stays
    p_churn = rng.beta(2.0, 5.0, n)
    basket = rng.lognormal(np.log(40.0), 0.6, n)
    price_sensitive = rng.beta(2.0, 3.0, n)
    redeem = 0.2 + 0.6 * price_sensitive                   # chance a coupon is used
    # share of the churn probability each action removes; contacts can backfire (negative)
    effect = np.column_stack([
        rng.normal(0.02, 0.03, n),
        rng.normal(0.03, 0.04, n),
        rng.normal(0.10, 0.08, n),
        *(pct * 3.0 * price_sensitive + rng.normal(0.0, 0.02, n) for pct in (0.05, 0.10, 0.20)),
    ])
    cost = np.column_stack([
        np.full(n, 0.05), np.full(n, 0.25), np.full(n, 4.0),
        *(pct * basket * redeem for pct in (0.05, 0.10, 0.20)),
    ])
    margin = effect * (p_churn * at_stake)[:, None] - cost
    best = np.where(margin.max(axis=1) > 0, margin.argmax(axis=1), -1)
    free_spend = float(np.where(best >= 0, cost[np.arange(n), np.maximum(best, 0)], 0.0).sum())
    return {"margin": margin, "cost": cost, "budget": BUDGET_SHARE * free_spend,
            "capacity": [None, None, CALLS, None, None, None]}


def greedy(*, margin, cost, budget, capacity) -> np.ndarray:
    """The naive alternative: all positive pairs by margin per cost, taken while they fit."""
    n, k = margin.shape
    i, j = np.nonzero(margin > 0)
    ratio = margin[i, j] / np.maximum(cost[i, j], 1e-12)
    room = [np.inf if c is None else c for c in capacity]
    choice = np.full(n, -1, dtype=np.int64)
    left = budget
    for p in np.argsort(-ratio, kind="stable"):
        ci, cj = i[p], j[p]
        if choice[ci] < 0 and room[cj] > 0 and cost[ci, cj] <= left:
            choice[ci] = cj
            room[cj] -= 1
            left -= cost[ci, cj]
    return choice


def plain_milp(*, margin, cost, budget, capacity, seconds: float) -> tuple[np.ndarray, float, str]:
    """HiGHS on every positive pair: one row per customer, the budget row, the capacity rows."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array

    n, k = margin.shape
    i, j = np.nonzero(margin > 0)
    p = len(i)
    rows, cols, vals, upper = [i, np.full(p, n)], [np.arange(p)] * 2, [np.ones(p), cost[i, j]], \
        [np.ones(n), [budget]]
    for a, cap in enumerate(capacity):
        if cap is not None:
            on = np.flatnonzero(j == a)
            rows.append(np.full(len(on), n + len(upper) - 1))
            cols.append(on)
            vals.append(np.ones(len(on)))
            upper.append([cap])
    matrix = coo_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(n + len(upper) - 1, p)).tocsr()
    res = milp(-margin[i, j], integrality=np.ones(p), bounds=Bounds(0.0, 1.0),
               constraints=LinearConstraint(matrix, -np.inf, np.concatenate(upper)),
               options={"time_limit": seconds})
    choice = np.full(n, -1, dtype=np.int64)
    if res.x is not None:
        chosen = np.flatnonzero(res.x > 0.5)
        choice[i[chosen]] = j[chosen]
    return choice, -float(res.mip_dual_bound), "optimal" if res.status == 0 else res.message


def _summary(problem: dict, choice: np.ndarray) -> dict[str, float]:
    rows = np.flatnonzero(choice >= 0)
    return {"objective": float(problem["margin"][rows, choice[rows]].sum()),
            "spend": float(problem["cost"][rows, choice[rows]].sum()),
            "calls": int((choice == ACTIONS.index("call")).sum()),
            "treated": int(len(rows))}


def step_big(n: int, seed: int) -> dict[str, object]:
    from churnguard.intervene.allocate import allocate

    problem = make_problem(n, seed)
    started = time.perf_counter()
    a = allocate(**problem, method="lagrangian")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "gap": a.gap, "bound": a.bound, "budget": problem["budget"],
            **_summary(problem, a.choice), "peak_rss_mib": peak_rss_mib()}


def step_small(n: int, seed: int, plain_seconds: float) -> dict[str, object]:
    import scipy.optimize  # noqa: F401  (imported before the clock starts, as in a warm process)

    from churnguard.intervene.allocate import allocate

    problem = make_problem(n, seed)
    out: dict[str, object] = {"budget": problem["budget"]}
    for method in ("exact", "lagrangian"):
        started = time.perf_counter()
        a = allocate(**problem, method=method)
        out[method] = {"seconds": time.perf_counter() - started, "gap": a.gap, "bound": a.bound,
                       **_summary(problem, a.choice)}
    if plain_seconds > 0:
        started = time.perf_counter()
        choice, bound, status = plain_milp(**problem, seconds=plain_seconds)
        seconds = time.perf_counter() - started
        summary = _summary(problem, choice)
        out["plain"] = {"seconds": seconds, "status": status, "bound": bound, **summary,
                        "gap": (bound - summary["objective"]) / abs(bound)}
    started = time.perf_counter()
    choice = greedy(**problem)
    out["greedy"] = {"seconds": time.perf_counter() - started, **_summary(problem, choice)}
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plain-seconds", type=float, default=600.0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--step", choices=("big", "small"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "big":
        print(json.dumps(step_big(args.customers, args.seed)))
        return 0
    if args.step == "small":
        print(json.dumps(step_small(args.small, args.seed, args.plain_seconds)))
        return 0

    me = str(Path(__file__).resolve())
    big = run_step([me, "--customers", str(args.customers), "--seed", str(args.seed),
                    "--step", "big"])
    small = run_step([me, "--small", str(args.small), "--seed", str(args.seed), "--plain-seconds",
                      str(args.plain_seconds), "--step", "small"])
    ex, lg, gr = small["exact"], small["lagrangian"], small["greedy"]
    lines = [
        f"Realistic retention campaign (seed {args.seed}): actions {', '.join(ACTIONS)}; e-mail "
        f"0.05 and SMS 0.25 per contact, calls 4.00 with at most {CALLS} calls, coupons cost the "
        "discount times the customer's basket times their chance of redeeming; heterogeneous "
        "effects, some negative. Budget = a quarter of the unconstrained best allocation's spend "
        "(it binds; so does the call capacity). Each step in a fresh process; peak RSS from "
        "getrusage. The machine is shared, so timings are noisy.",
        "",
        f"**{args.customers:,} customers × {len(ACTIONS)} actions, `method=\"lagrangian\"`:** "
        f"{big['seconds']:.1f} s, gap {big['gap']:.1e} (objective "
        f"{big['objective']:,.0f}, bound {big['bound']:,.0f}), spend {big['spend']:,.0f} of "
        f"budget {big['budget']:,.0f} ({100 * big['spend'] / big['budget']:.3f} %), "
        f"{big['calls']} calls, {big['treated']:,} customers treated; peak RSS "
        f"{big['peak_rss_mib']:.0f} MiB. Target ≤ 10 s with gap ≤ 0.5 %: "
        f"{'met' if big['seconds'] <= 10 and big['gap'] <= 0.005 else 'MISSED'}.",
        "",
        f"**{args.small:,} customers** (budget {small['budget']:,.0f}; peak RSS "
        f"{small['peak_rss_mib']:.0f} MiB):",
        "",
        "| method | seconds | objective | vs exact | spend | gap to its bound |",
        "|---|---|---|---|---|---|",
    ]
    methods = [("`method=\"exact\"`", ex), ("`method=\"lagrangian\"`", lg)]
    if "plain" in small:
        methods.append((f"HiGHS MILP alone on every pair ({small['plain']['status']})",
                        small["plain"]))
    methods.append(("greedy by margin / cost", gr))
    for name, r in methods:
        gap = f"{r['gap']:.1e}" if "gap" in r else "–"
        lines.append(f"| {name} | {r['seconds']:.2f} | {r['objective']:,.1f} | "
                     f"{r['objective'] / ex['objective']:.6f} | {r['spend']:,.1f} | {gap} |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_allocate.py" + "".join(
            f" {flag} {value}" for flag, value, default in
            (("--customers", args.customers, 1_000_000), ("--small", args.small, 20_000),
             ("--seed", args.seed, 0), ("--plain-seconds", args.plain_seconds, 600.0))
            if value != default)
        write_section("allocate", body, command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
