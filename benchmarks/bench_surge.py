"""Surge alerts on simulated shops with injected complaint surges (issue 20, "Surges").

For each seed and each of the simulator's four topics, one shop is simulated with a surge of
that topic (``--size`` times its baseline for ``--surge-days`` days, from a start drawn at
random from the seed in the second half of the window). Its negative mentions per topic per day
are counted and tested by the product's detector (:func:`churnguard.voice.alerts.detect` with
the default ``[voice]`` settings: BH at 0.0025 a day, 8 baseline weeks, weekly tests below 5 a
day). Figures:

- **found within a day**: the share of surges with an alert of their topic on the first or the
  second day of the surge, for topics with at least ``--min-per-day`` (80) negative mentions a
  day in the surge's baseline (the simulator's own figure, truth/surge.json), and for the others;
- **false alerts per topic per quarter**: alerts on topic-days outside the surged topic's surge
  (every other topic every day, the surged topic before and after it), per 91 such topic-days.

**The counts path.** A topic reaches 80 negative mentions a day only in a shop of about 70,000
customers (4.2 million events in 182 days); reading its 60,000 texts through the topic codebook
and the sentiment model 12 times does not fit this machine's time. So the counts are of the
simulator's texts with their true topic and sentiment (truth/texts.parquet): this measures the
statistical detector on the simulator's texts and surges, not the codebook's and the sentiment
model's errors (docs/voice.md gives their F1; a misread text moves a count by one).

    python benchmarks/bench_surge.py --users 85000 --days 182 --seeds 1,2,3 --product 20000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import DATA, write_section  # noqa: E402

from churnguard.config import VoiceConfig  # noqa: E402
from churnguard.simulate import Surge  # noqa: E402
from churnguard.simulate.runner import simulate  # noqa: E402
from churnguard.simulate.scenarios import SURGE_TOPICS  # noqa: E402
from churnguard.voice.alerts import detect  # noqa: E402

START = dt.date(2025, 1, 1)


def negative_counts(out: Path, days: int) -> pd.DataFrame:
    """Negative mentions per true topic per day, from the simulator's truth of its texts."""
    t = pd.read_parquet(out / "truth" / "texts.parquet", columns=["ts", "topic", "sentiment"])
    t = t[t["sentiment"] == "negative"]
    day = pd.to_datetime(t["ts"]).dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    grid = pd.crosstab(day, t["topic"])
    index = pd.date_range(pd.Timestamp(START), periods=days, freq="D")
    return grid.reindex(index=index, columns=list(SURGE_TOPICS), fill_value=0).fillna(0)


def one_run(*, users: int, days: int, seed: int, topic: str, size: float, surge_days: int,
            work: Path) -> dict:
    rng = np.random.default_rng([seed, SURGE_TOPICS.index(topic)])
    first = int(rng.integers(days // 2, days - surge_days - 2))
    surge = Surge(topic=topic, start=START + dt.timedelta(days=first), size=size, days=surge_days)
    # The counts are cached (benchmarks/.data/surge): simulating a shop is the slow part.
    cached = DATA / "surge" / (f"u{users}-d{days}-s{seed}-{topic}-x{size:g}-n{surge_days}-"
                               f"{surge.start:%Y%m%d}")
    if not (cached / "counts.parquet").exists():
        out = work / f"s{seed}-{topic}"
        simulate(n_users=users, days=days, seed=seed, out_dir=out, surge=surge)
        cached.mkdir(parents=True, exist_ok=True)
        negative_counts(out, days).to_parquet(cached / "counts.parquet")
        shutil.copy(out / "truth" / "surge.json", cached / "surge.json")
        shutil.rmtree(out)
    truth = json.loads((cached / "surge.json").read_text())
    counts = pd.read_parquet(cached / "counts.parquet")
    v = VoiceConfig()
    tests = detect(counts, weeks=v.baseline_weeks, fdr=v.alert_fdr, weekly_below=v.weekly_below)
    s0, s1 = pd.Timestamp(surge.start), pd.Timestamp(surge.end)  # s1 exclusive
    mine = tests["topic"] == topic
    in_surge = mine & (tests["end"] >= s0) & (tests["start"] < s1)
    found = tests[mine & tests["alert"] & (tests["end"] >= s0)
                  & (tests["end"] <= s0 + pd.Timedelta(days=1))]
    tested_days = counts.index[7 * v.baseline_weeks:]  # every topic is tested on these
    n_days = len(tested_days)
    surge_topic_days = int(((tested_days >= s0) & (tested_days < s1)).sum())
    return {"seed": seed, "topic": topic, "start": surge.start.isoformat(),
            "baseline_per_day": truth["baseline_mentions_per_day"],
            "counted_baseline_per_day": float(counts.loc[
                s0 - pd.Timedelta(days=28):s0 - pd.Timedelta(days=1), topic].mean()),
            "first_day_count": int(counts.loc[s0, topic]),
            "found_within_a_day": not found.empty,
            "first_alert_day": None if found.empty else int((found["end"].min() - s0).days),
            "alert_days_in_surge": int((in_surge & tests["alert"]).sum()),
            "false_alerts": int((tests["alert"] & ~in_surge).sum()),
            "topic_days": n_days * len(SURGE_TOPICS) - surge_topic_days}


def product_run(*, users: int, days: int, seed: int, topic: str, size: float, surge_days: int,
                work: Path) -> dict:
    """One shop through the product's own reading of texts: the stored topic codebook and the
    sentiment model (:func:`churnguard.voice.shop.voice_texts`), each codebook cluster named
    after the true topic of most of its texts (what a person does reading its keyphrases,
    ``[voice.topic_names]``), then the detector at the default settings."""
    from churnguard.ingest import ingest_files
    from churnguard.project import init_project
    from churnguard.voice.shop import voice_texts

    rng = np.random.default_rng([seed, SURGE_TOPICS.index(topic)])
    first = int(rng.integers(days // 2, days - surge_days - 2))
    surge = Surge(topic=topic, start=START + dt.timedelta(days=first), size=size, days=surge_days)
    sim = simulate(n_users=users, days=days, seed=seed, out_dir=work / "product-sim", surge=surge)
    project, _ = init_project(work / "product")
    truth = pd.read_parquet(work / "product-sim" / "truth" / "texts.parquet",
                            columns=["event_id", "topic", "sentiment"])
    with project.open_store() as store:
        for kind in ("users", "events"):
            ingest_files(store, kind=kind, files=[sim.paths[kind]])
        t0 = time.perf_counter()
        texts = voice_texts(store, project.config)
        read_s = time.perf_counter() - t0
    texts = texts.merge(truth.rename(columns={"topic": "true_topic",
                                              "sentiment": "true_sentiment"}), on="event_id")
    names = texts.dropna(subset=["topic"]).groupby("topic")["true_topic"].agg(
        lambda v: v.value_counts().index[0])
    texts["named"] = texts["topic"].map(names)
    neg = texts[(texts["sentiment"] == "negative") & texts["named"].notna()]
    day = pd.to_datetime(neg["ts"]).dt.tz_localize(None).dt.normalize()
    counts = pd.crosstab(day, neg["named"]).reindex(
        index=pd.date_range(pd.Timestamp(START), periods=days, freq="D"),
        columns=list(SURGE_TOPICS), fill_value=0).fillna(0)
    v = VoiceConfig()
    tests = detect(counts, weeks=v.baseline_weeks, fdr=v.alert_fdr, weekly_below=v.weekly_below)
    s0, s1 = pd.Timestamp(surge.start), pd.Timestamp(surge.end)
    mine = tests["topic"] == topic
    in_surge = mine & (tests["end"] >= s0) & (tests["start"] < s1)
    found = tests[mine & tests["alert"] & (tests["end"] >= s0)
                  & (tests["end"] <= s0 + pd.Timedelta(days=1))]
    tested = counts.index[7 * v.baseline_weeks:]
    topic_days = len(tested) * len(SURGE_TOPICS) - int(((tested >= s0) & (tested < s1)).sum())
    agree = (texts["sentiment"] == texts["true_sentiment"]).mean()
    named_right = (texts["named"] == texts["true_topic"]).mean()
    shutil.rmtree(work / "product-sim")
    shutil.rmtree(work / "product")
    return {"users": users, "seed": seed, "topic": topic, "start": surge.start.isoformat(),
            "texts": len(texts), "read_s": read_s,
            "counted_baseline_per_day": float(counts.loc[
                s0 - pd.Timedelta(days=28):s0 - pd.Timedelta(days=1), topic].mean()),
            "found_within_a_day": not found.empty,
            "alert_days_in_surge": int((in_surge & tests["alert"]).sum()),
            "false_alerts": int((tests["alert"] & ~in_surge).sum()), "topic_days": topic_days,
            "sentiment_agreement": float(agree), "topic_agreement": float(named_right)}


def summarise(runs: pd.DataFrame, min_per_day: float) -> dict:
    big = runs["baseline_per_day"] >= min_per_day
    per_quarter = runs["false_alerts"].sum() / runs["topic_days"].sum() * 91
    return {"big": (int(runs.loc[big, "found_within_a_day"].sum()), int(big.sum())),
            "small": (int(runs.loc[~big, "found_within_a_day"].sum()), int((~big).sum())),
            "false_alerts": int(runs["false_alerts"].sum()),
            "topic_days": int(runs["topic_days"].sum()), "per_quarter": float(per_quarter)}


def render_product(r: dict) -> str:
    per_quarter = r["false_alerts"] / r["topic_days"] * 91
    return (f"**Through the product's own reading of texts** (`--product`: one shop of "
            f"{r['users']:,} customers, seed {r['seed']}, a 2× {r['topic']} surge from "
            f"{r['start']}; its {r['texts']:,} reviews and tickets read by the topic codebook "
            f"and the sentiment model in {r['read_s']:.0f} s, each cluster named after the true "
            "topic of most of its texts, as a person names clusters from their keyphrases): "
            f"sentiment agrees with the truth on {r['sentiment_agreement']:.1%} of texts, the "
            f"named topic on {r['topic_agreement']:.1%} (abstentions count as wrong); the "
            f"surged topic's baseline is {r['counted_baseline_per_day']:.1f} negative mentions a "
            f"day as the product counts them; surge found within a day: "
            f"**{'yes' if r['found_within_a_day'] else 'no'}** "
            f"({r['alert_days_in_surge']} alert days in the surge); false alerts: "
            f"{r['false_alerts']} on {r['topic_days']:,} topic-days = {per_quarter:.3f} per "
            "topic per quarter.")


def render(runs: pd.DataFrame, summary: dict, args: argparse.Namespace) -> str:
    b, s = summary["big"], summary["small"]
    share = lambda f, n: f"{f}/{n} ({f / n:.0%})" if n else "none"  # noqa: E731
    v = VoiceConfig()
    lines = [
        f"Shops of {args.users:,} customers over {args.days} days, seeds {args.seeds}; in each, "
        f"one surge of {args.size:g}× for {args.surge_days} days of one of the four topics "
        f"({len(runs)} shops). Counts: negative mentions per topic per day from the simulator's "
        "truth of its texts (the counts path: bench_surge.py's docstring says why); detector "
        f"`churnguard.voice.alerts.detect` at the default settings (BH {v.alert_fdr} a day, "
        f"{v.baseline_weeks} baseline weeks, weekly tests below {v.weekly_below:g} a day).", "",
        f"- Surges found within a day, topics with ≥ {args.min_per_day:g} negative mentions a "
        f"day: **{share(*b)}** (target ≥ 95%); smaller topics: {share(*s)}.",
        f"- False alerts: {summary['false_alerts']} on {summary['topic_days']:,} topic-days "
        f"without a surge = **{summary['per_quarter']:.3f} per topic per quarter** "
        "(target ≤ 0.25).", "",
        "| seed | topic | start | baseline/day (simulator) | first surge day count | found "
        "within a day | first alert (day of surge) | alert days in surge | false alerts |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in runs.itertuples():
        lines.append(f"| {r.seed} | {r.topic} | {r.start} | {r.baseline_per_day:.1f} | "
                     f"{r.first_day_count} | {'yes' if r.found_within_a_day else 'no'} | "
                     f"{'—' if pd.isna(r.first_alert_day) else int(r.first_alert_day) + 1} | "
                     f"{r.alert_days_in_surge} | {r.false_alerts} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=70_000)
    parser.add_argument("--days", type=int, default=182)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--topics", default=",".join(SURGE_TOPICS))
    parser.add_argument("--size", type=float, default=2.0)
    parser.add_argument("--surge-days", type=int, default=14)
    parser.add_argument("--min-per-day", type=float, default=80.0)
    parser.add_argument("--product", type=int, default=0, metavar="USERS",
                        help="Also run one shop of USERS customers (seed: the first, topic "
                             "delivery) through the product's codebook and sentiment model.")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    product = None
    with tempfile.TemporaryDirectory(prefix="bench_surge_") as work:
        if args.product:
            product = product_run(users=args.product, days=args.days,
                                  seed=int(args.seeds.split(",")[0]), topic="delivery",
                                  size=args.size, surge_days=args.surge_days, work=Path(work))
            print(product, flush=True)
        for seed in (int(s) for s in args.seeds.split(",")):
            for topic in args.topics.split(","):
                t0 = time.perf_counter()
                rows.append(one_run(users=args.users, days=args.days, seed=seed, topic=topic,
                                    size=args.size, surge_days=args.surge_days, work=Path(work)))
                print(rows[-1], f"{time.perf_counter() - t0:.0f}s", flush=True)
    runs = pd.DataFrame(rows)
    body = render(runs, summarise(runs, args.min_per_day), args)
    if product is not None:
        body += "\n\n" + render_product(product)
    print(body)
    if not args.no_write:
        write_section("surge", body, command="python benchmarks/bench_surge.py " + " ".join(
            sys.argv[1:]))


if __name__ == "__main__":
    main()
