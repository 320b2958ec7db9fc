"""Recommendation quality and speed: hit rate at 10 of the recommender against popularity.

    python benchmarks/bench_recommend.py [--users 50000] [--days 365] [--seed 0] [--no-write]

Simulates the default scenario and ingests it into a store (both cached under benchmarks/.data,
in a step of their own). At the cutoff 30 days before the end, evaluates
``churnguard.intervene.recommend.evaluate_recommendations``: among the customers with an order in
the last 30 days, the share whose ordered items include one of the 10 recommended at the cutoff.
Rows: the popularity baseline, the default model, and the model's two main signals alone
(item-item CF with ``popular_share=0``, category-aware popularity with ``popular_share=1``).
Then the production call: ``recommend_items`` for every customer at the cutoff. Each step runs in
a fresh process, so its time and peak RSS are its own. Writes section "recommend" of RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import DATA, START, cached_shop, peak_rss_mib, run_step, write_section  # noqa: E402

WINDOW = 30
K = 10
VARIANTS = {
    "model": {},
    "cf_only": {"popular_share": 0.0},
    "category_popularity_only": {"popular_share": 1.0},
}
LABELS = {
    "popularity": "popularity (baseline: most ordered in 90 days, minus bought)",
    "model": "model (defaults: CF + category popularity + titles)",
    "cf_only": "item-item CF alone (`popular_share=0`)",
    "category_popularity_only": "category-aware popularity alone (`popular_share=1`)",
}


def _store_path(users: int, days: int, seed: int) -> Path:
    # No campaigns: the recommender reads none.
    return cached_shop(DATA / f"recommend_{users}_{days}_{seed}", users=users, days=days,
                       seed=seed, kinds=("events", "users", "items")).db


def step(users: int, days: int, seed: int, what: str) -> dict[str, object]:
    from churnguard.intervene.recommend import (
        RecommendConfig,
        evaluate_recommendations,
        recommend_items,
    )
    from churnguard.store import Store

    started = time.perf_counter()
    db = _store_path(users, days, seed)
    if what == "prepare":
        return {"seconds": time.perf_counter() - started, "peak_rss_mib": peak_rss_mib()}
    as_of = dt.datetime.combine(START + dt.timedelta(days=days - WINDOW), dt.time())
    with Store.open(db, read_only=True) as store:
        store.con.execute("SET enable_progress_bar = false")
        started = time.perf_counter()
        if what == "all":
            recs = recommend_items(store, as_of=as_of, k=K)
            out: dict[str, object] = {
                "customers": int(recs["user_id"].nunique()), "rows": len(recs),
                "sources": recs["source"].value_counts(normalize=True).round(4).to_dict()}
        else:
            out = evaluate_recommendations(store, as_of=as_of, window_days=WINDOW, k=K,
                                           config=RecommendConfig(**VARIANTS[what]))
    return out | {"seconds": time.perf_counter() - started, "peak_rss_mib": peak_rss_mib()}


def _se(p: float, n: int) -> float:
    return math.sqrt(p * (1.0 - p) / n) if n else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--step", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step is not None:
        print(json.dumps(step(args.users, args.days, args.seed, args.step), default=str))
        return 0

    runs = {}
    for what in ("prepare", *VARIANTS, "all"):
        print(f"== {what}", flush=True)
        runs[what] = run_step([str(Path(__file__).resolve()), "--users", str(args.users),
                               "--days", str(args.days), "--seed", str(args.seed),
                               "--step", what])
        print(f"   {json.dumps(runs[what], default=str)}", flush=True)

    model = runs["model"]
    n = int(model["n_customers"])
    base = float(model["hit_rate_popular"])
    rates = {"popularity": base} | {v: float(runs[v]["hit_rate_model"]) for v in VARIANTS}
    seconds = {"popularity": None} | {v: float(runs[v]["seconds"]) for v in VARIANTS}
    everyone = runs["all"]
    lines = [
        f"Default scenario, {args.users:,} customers, {args.days} days (seed {args.seed}); "
        f"cutoff {model['as_of'][:10]} ({WINDOW} days before the end). Evaluated: the {n:,} "
        f"customers with an order in the {WINDOW} days from the cutoff; a hit is one of their "
        f"ordered items among the {K} recommended at the cutoff (events before it only). "
        "± is one binomial standard error.",
        "",
        f"| recommender | hit rate@{K} | vs popularity | seconds (model and baseline) |",
        "|---|---|---|---|",
    ]
    for name, rate in rates.items():
        secs = "—" if seconds[name] is None else f"{seconds[name]:.1f}"
        lines.append(f"| {LABELS[name]} | {rate:.4f} ± {_se(rate, n):.4f} | "
                     f"{rate / base:.2f}× | {secs} |")
    sources = ", ".join(f"{k} {v:.1%}" for k, v in everyone["sources"].items())
    lines += [
        "",
        f"Target: model hit rate@{K} > popularity: "
        f"{'met' if rates['model'] > base else 'MISSED'} ({rates['model'] / base:.2f}×).",
        "",
        f"`recommend_items` for every customer at the cutoff: {everyone['customers']:,} "
        f"customers, {everyone['rows']:,} rows in {everyone['seconds']:.1f} s, peak RSS "
        f"{everyone['peak_rss_mib']:.0f} MiB (evaluation peak "
        f"{max(float(runs[v]['peak_rss_mib']) for v in VARIANTS):.0f} MiB). Sources of the "
        f"lists: {sources}.",
        "",
        "The simulator draws an order's category from the customer's own category preferences "
        "and the item inside the category from a popularity skew shared by all customers: "
        "category-aware popularity has the form of the simulator's own choice rule, and "
        "item-item CF can only rediscover categories. In a shop with item-level taste "
        "(complements, styles, brands) CF has more to find. The simulated catalogue has no new "
        "items (every item has history), so the title path is idle here; the tests cover it.",
    ]
    body = "\n".join(lines)
    print()
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_recommend.py" + "".join(
            f" {flag} {value}" for flag, value, default in
            (("--users", args.users, 50_000), ("--days", args.days, 365),
             ("--seed", args.seed, 0)) if value != default)
        write_section("recommend", body, command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
