"""Weekly operating cycles replayed on a simulated shop, measured against the simulator's truth.

    python benchmarks/bench_operate.py [--users 3000] [--start-day 392] [--weeks 34]
        [--change-day 420] [--days N] [--seeds 0] [--scenarios drift,default]
        [--retrain-every-days 28] [--fresh] [--no-write]

Issue 18, item 6. Per scenario and seed:

1. **Simulate once** the whole period (``days``: by default just long enough for the last
   cycle's cohort to mature), the ``drift`` scenario's change on ``change_day``; the simulator
   records the exact truth at every cycle's date.
2. **Replay.** A project (``churnguard.toml`` defaults; plans and deliveries off, as they are by
   default: ``[operate] plan_budget`` unset) gets the users, items and campaigns and the events
   before the first cycle's date. Then, once a week, the week's events are written into the
   project's inbox and :func:`churnguard.operate.run_cycle` runs at ``now`` = the week's end,
   exactly as ``churnguard run --now`` does: ingest, score, monitor, challenge (the first
   model, then the gate when a challenger is due), plan, deliver, measure. Recorded per cycle:
   wall time per step and per cycle, the process's peak RSS so far, the monitor's checks and
   alarms, the gate's decision, the champion after the cycle. Each cycle's figures are appended
   to ``cycles.jsonl`` in the run's folder, so a killed run continues where it stopped.
3. **Truth.** Every cycle's date T is a test cohort: the customers at T, labelled by their orders
   in [T, T + horizon), built from a second store that holds the whole simulated period (only
   the labels need the future; features use events before T). On each cohort, ROC-AUC of
   (i) the champion after that week's cycle, (ii) a model retrained every cycle: the champion's
   recipe (same catalogue kind and settings, same churn definition) trained by
   :func:`churnguard.training.train_model` as of T on all the labels then available — what the
   gate's refit would deploy —, (iii) the never-retrained model: the first champion, (iv) the
   simulator's true P(churn) (the oracle). Every model compared on the cohort at T learned only
   from label windows ending by T: out of time.
4. **The gate against the truth.** A promotion in the cycle at T deployed a refit that learned up
   to T: its test cohort is the one at T, where it is compared with the champion it replaced (a
   promotion is wrong when the refit is truly worse by more than 0.01). A kept challenge is
   compared the same way with the every-cycle model (what the refit would have been): a miss
   when that model was better by more than 0.01.
5. **Drift:** the detection delay, in weeks, from the change becoming measurable (``truth/
   change.json``) to the first monitor alarm and to the first promotion.

Writes the section "operate" of RESULTS.md.

At 20,000 customers one scenario and seed takes two to three and a half hours on 2 cores, more
than the whole benchmark fits in one sitting. So a finished run (its figures, not its stores) is
also kept in ``benchmarks/runs/operate/``, which is committed: a later invocation with the same
settings reads it instead of replaying, so the benchmark can be completed one run at a time on
several machines; ``--fresh`` replays it again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import churnguard  # noqa: E402, F401  (before torch: OMP_WAIT_POLICY)
from results import DATA, HORIZON, START, ingest_shop, peak_rss_mib, write_section  # noqa: E402

GAP = 0.01  # the Done-when lines' tolerances
MARGIN = 0.02
LAG = 4
ISSUE_USERS = 20_000  # the size the issue's Done-when lines are judged at
STALE = 4  # weeks: every-cycle models this old at most score each cohort too (the ceiling)
FINISHED = HERE / "runs" / "operate"  # finished runs' figures, committed (module docstring)


# -- the calendar ---------------------------------------------------------------------------------
def calendar(*, start_day: int, weeks: int, days: int | None = None) -> dict[str, Any]:
    """The cycles' day indices (the first at ``start_day``, then ``weeks`` weekly ones) and the
    shop's length: by default the shortest in which the last cycle's cohort matures (its labels
    need orders up to T + horizon - 1, the last simulated day).

    >>> c = calendar(start_day=337, weeks=30)
    >>> c["cycles"][0], c["cycles"][-1], c["days"]
    (337, 547, 638)
    """
    cycles = [start_day + 7 * k for k in range(weeks + 1)]
    needed = cycles[-1] + HORIZON + 1
    days = needed if days is None else days
    if days < needed:
        raise ValueError(f"--days {days}: the last cycle's cohort (day {cycles[-1]}) needs "
                         f"{needed} days to mature")
    return {"cycles": cycles, "days": days}


def day_time(day: int) -> dt.datetime:
    return dt.datetime.combine(START + dt.timedelta(days=day), dt.time())


# -- what one cycle's record says -----------------------------------------------------------------
def cycle_figures(record: Any, *, wall: float, champion: str | None) -> dict[str, Any]:
    """The figures of one cycle's record (a :class:`churnguard.operate.CycleRecord`)."""
    steps = {r.step: r for r in record.records}
    seconds = {r.step: (r.finished_at - r.started_at).total_seconds()
               for r in record.records if r.finished_at is not None}
    monitor = steps.get("monitor")
    checks = alarms = 0
    alarmed: list[str] = []
    drifted = alarm = False
    label = None
    if monitor is not None and monitor.status == "done":
        features = monitor.figures.get("features", [])
        score = monitor.figures.get("score_drift")
        checks = len(features) + (score is not None)
        alarmed = [f["name"] for f in features if f.get("alarm")]
        alarms = len(alarmed) + bool(score and score.get("alarm"))
        drifted = bool(monitor.figures.get("drifted"))
        alarm = bool(monitor.figures.get("alarm"))
        label = _slim_label(monitor.figures.get("label"))
    challenge = steps.get("challenge")
    decision = realized = None
    if challenge is not None:
        decision = challenge.figures.get("decision")
        realized = challenge.figures.get("realized")
        if decision is None and realized and realized.get("outcome") == "rolled-back":
            decision = realized  # the realized check moved the champion back
        if decision is None and challenge.status == "done" and "trained" in challenge.figures:
            decision = {"outcome": "first", "champion_after": challenge.figures["trained"]}
    return {"status": record.status, "error": record.error, "wall_s": wall,
            "step_s": seconds, "statuses": {r.step: r.status for r in record.records},
            "checks": checks, "alarms": alarms, "alarmed": alarmed[:10], "drifted": drifted,
            "alarm": alarm, "label": label,
            "decision": _slim(decision), "realized": _slim(realized), "champion": champion,
            "peak_rss_mib": peak_rss_mib()}


def _slim_label(label: dict | None) -> dict | None:
    if label is None:
        return None
    keep = ("cohort", "model_version", "current", "applies", "n", "churn_rate", "mean_p", "calibration_gap",
            "calibration_se", "calibration_p", "calibration_alarm", "auc", "expected_auc",
            "auc_gap", "auc_p", "auc_alarm", "alarm", "alpha", "rate_tolerance", "auc_tolerance")
    return {k: label.get(k) for k in keep}


def _slim(decision: dict | None) -> dict | None:
    if decision is None:
        return None
    keep = ("trigger", "outcome", "champion_version", "challenger_version", "champion_after",
            "cohort_cutoff", "n_customers", "champion_auc", "challenger_auc", "delta_auc",
            "delta_auc_lower", "champion_ece", "challenger_ece", "reason")
    return {k: decision.get(k) for k in keep if k in decision}


# -- the replay -----------------------------------------------------------------------------------
def _load_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row, default=str) + "\n")


def prepare(folder: Path, *, scenario: str, users: int, days: int, change_day: int, seed: int,
            cycles: list[int], retrain_every_days: int) -> dict[str, Any]:
    """Simulate (unless cached), create the project and load what precedes the first cycle."""
    import pandas as pd

    from churnguard.config import IngestConfig, OperateConfig, ProjectConfig
    from churnguard.ingest import ingest_files
    from churnguard.project import init_project
    from churnguard.simulate import simulate

    sim = folder / "sim"
    seconds: dict[str, float] = {}
    if not (sim / "manifest.json").exists():  # the manifest is written last
        t0 = time.perf_counter()
        simulate(n_users=users, days=days, seed=seed, out_dir=sim, scenario=scenario, start=START,
                 horizon_days=HORIZON, cutoffs=[day_time(d).date() for d in cycles],
                 change_day=change_day if scenario == "drift" else None)
        seconds["simulate"] = time.perf_counter() - t0
    root = folder / "project"
    if not (root / "loaded").exists():
        t0 = time.perf_counter()
        # The simulated calendar may run past today; plans and deliveries stay off (defaults).
        config = ProjectConfig(ingest=IngestConfig(future_events="allow"),
                               operate=OperateConfig(retrain_every_days=retrain_every_days))
        project, _ = init_project(root, config=config)
        events = pd.read_parquet(sim / "events.parquet")
        first = pd.Timestamp(day_time(cycles[0]), tz="UTC")
        ts = events["ts"] if events["ts"].dt.tz is not None else events["ts"].dt.tz_localize("UTC")
        (folder / "early").mkdir(exist_ok=True)
        events[ts < first].to_parquet(folder / "early" / "events.parquet", index=False)
        with project.open_store() as store:
            for kind, path in (("items", sim / "items.parquet"), ("users", sim / "users.parquet"),
                               ("events", folder / "early" / "events.parquet"),
                               ("campaigns", sim / "campaigns.parquet")):
                ingest_files(store, kind=kind, files=[path], config=project.config.ingest)
        (root / "loaded").write_text("initial load done\n")
        seconds["initial_load"] = time.perf_counter() - t0
    # Kept beside the run, so a resumed run still reports what the setup took.
    kept = folder / "setup.json"
    seconds = {**(json.loads(kept.read_text()) if kept.exists() else {}), **seconds}
    kept.write_text(json.dumps(seconds))
    return seconds


def replay(folder: Path, *, cycles: list[int], say: Any = print) -> list[dict[str, Any]]:
    """Run one cycle per date in ``cycles``, each after dropping the week's events into the
    inbox; figures are appended to ``folder/cycles.jsonl`` (a rerun continues after the last)."""
    import pandas as pd

    from churnguard.operate import OneStore, run_cycle
    from churnguard.project import Project
    from churnguard.registry import CHAMPION, alias_version
    from churnguard.training import training_cutoffs

    log = folder / "cycles.jsonl"
    done = {row["day"]: row for row in _load_jsonl(log)}
    project = Project.load(folder / "project")
    events = None
    for k, day in enumerate(cycles):
        if day in done:
            continue
        if k > 0:
            if events is None:
                events = pd.read_parquet(folder / "sim" / "events.parquet")
                if events["ts"].dt.tz is None:
                    events["ts"] = events["ts"].dt.tz_localize("UTC")
            lo, hi = (pd.Timestamp(day_time(d), tz="UTC") for d in (cycles[k - 1], day))
            inbox = project.root / project.config.operate.inbox / "events"
            inbox.mkdir(parents=True, exist_ok=True)
            name = f"events-{day_time(day):%Y-%m-%d}.parquet"
            if not (inbox.parent / "done" / "events" / name).exists():
                week = events[(events["ts"] >= lo) & (events["ts"] < hi)]
                # Written under a .part name and renamed: the inbox leaves such files alone.
                week.to_parquet(inbox / (name + ".part"), index=False)
                (inbox / (name + ".part")).rename(inbox / name)
        # A cycle an earlier process began and did not finish resumes where it stopped, so its
        # wall time is not a cycle's: the marker says so, and its row is marked "paused".
        begun = folder / f"begun_{day}"
        resumed = begun.exists()
        begun.touch()
        t0 = time.perf_counter()
        with project.open_store() as store:
            record = run_cycle(OneStore(store), project=project, now=day_time(day))
            wall = time.perf_counter() - t0
            champion = alias_version(store, CHAMPION)
            # Where a model trained now validates (the gate's refit): the every-cycle model of
            # the truth phase uses the same cutoffs.
            _, validation = training_cutoffs(store, definition=project.config.churn)
        row = {"day": day, "date": f"{day_time(day):%Y-%m-%d}",
               "refit_validation": f"{validation:%Y-%m-%d}",
               **cycle_figures(record, wall=wall, champion=champion)}
        if resumed:
            row["paused"] = "resumed after its process was stopped mid-cycle"
        if record.status != "done":
            raise RuntimeError(f"the cycle at {row['date']} failed: {record.error}")
        _append(log, row)
        begun.unlink()
        d = row["decision"] or {}
        say(f"   cycle {row['date']}: {row['wall_s']:.1f} s "
            f"({', '.join(f'{s} {v:.1f}' for s, v in row['step_s'].items() if v >= 0.05)}); "
            f"alarms {row['alarms']}/{row['checks']}; "
            f"{d.get('outcome', 'no challenge')}; champion {champion}; "
            f"peak RSS {row['peak_rss_mib']:.0f} MiB")
        done[day] = row
    return [done[d] for d in cycles]


def lag_checks(folder: Path, *, cycles: list[int], lag_days: int,
               say: Any = print) -> list[dict[str, Any]]:
    """After the replay: the monitor's feature checks of each week's batch against the
    population ``lag_days`` earlier (``[monitor] reference = "lag"``) instead of the champion's
    training window, from the replayed store (features use only events before each date; the
    score check is left out, as the store's champion is the last one). Appended to
    ``lag_<days>.jsonl``."""
    from churnguard.config import MonitorConfig
    from churnguard.monitor import run_monitor
    from churnguard.project import Project

    log = folder / f"lag_{lag_days}.jsonl"
    done = {row["day"]: row for row in _load_jsonl(log)}
    project = Project.load(folder / "project")
    config = project.config.monitor.model_copy(update={"reference": "lag",
                                                       "reference_lag_days": lag_days})
    config = MonitorConfig.model_validate(config.model_dump())
    for day in cycles[1:]:
        if day in done:
            continue
        with project.open_store(read_only=True) as store:
            report = run_monitor(store, as_of=day_time(day), config=config,
                                 definition=project.config.churn)
        alarmed = [f.name for f in report.features if f.alarm]
        row = {"day": day, "date": f"{day_time(day):%Y-%m-%d}", "checks": len(report.features),
               "alarms": len(alarmed), "alarmed": alarmed[:10]}
        _append(log, row)
        done[day] = row
        say(f"   lag-{lag_days} check {row['date']}: {row['alarms']}/{row['checks']} alarm")
    return [done[d] for d in cycles[1:]]


# -- the truth ------------------------------------------------------------------------------------
def evaluate(folder: Path, *, cycles: list[int], rows: list[dict[str, Any]],
             say: Any = print) -> list[dict[str, Any]]:
    """Per cycle date T, ROC-AUC on the cohort at T of the week's champion, the every-cycle model,
    the never-retrained model and the oracle (module docstring); appended to ``truth.jsonl``."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from churnguard.project import Project
    from churnguard.registry import load_model
    from churnguard.snapshots import build_snapshot
    from churnguard.store import Store
    from churnguard.training import train_model

    log = folder / "truth.jsonl"
    done = {row["day"]: row for row in _load_jsonl(log)}
    if all(d in done for d in cycles):
        return [done[d] for d in cycles]
    project = Project.load(folder / "project")
    definition = project.config.churn
    db = folder / "full.duckdb"
    if not db.exists():  # ingested under another name and renamed when complete
        tmp = folder / "full.tmp.duckdb"
        tmp.unlink(missing_ok=True)
        with Store.open(tmp) as store:
            ingest_shop(store, folder / "sim")
        tmp.rename(db)
    versions = {r["champion"] for r in rows} | {
        v for r in rows for v in ((r["decision"] or {}).get("champion_version"),) if v}
    first = rows[0]["champion"]
    with project.open_store(read_only=True) as store:
        models = {v: load_model(store, v) for v in versions}
    recipe = type(models[first])(**models[first].get_params())
    truth = pd.read_parquet(folder / "sim" / "truth" / "churn.parquet",
                            columns=["user_id", "cutoff", "p_churn"])
    truth["cutoff"] = pd.to_datetime(truth["cutoff"]).dt.tz_convert(None).astype("datetime64[us]")
    truth = truth.set_index(["user_id", "cutoff"])["p_churn"]
    # The every-cycle models of earlier cycles (from the log: the newest STALE of them), to score
    # each cohort with a model retrained 1..STALE weeks before: the ceiling of a policy that
    # retrains on a schedule without a gate (module docstring, 6).
    history = [done[d]["every_cycle_version"] for d in cycles if d in done][-STALE:]
    with Store.open(db) as store:
        snap = build_snapshot(store, definition=definition,
                              cutoffs=[day_time(d) for d in cycles if d not in done])
        cut = snap.index.get_level_values(1)
        stale_models = {v: load_model(store, v) for v in history}
        for row in rows:
            day = row["day"]
            if day in done:
                continue
            test = snap.subset(np.asarray(cut == pd.Timestamp(day_time(day))))
            y = test.y()
            t0 = time.perf_counter()
            # A fresh copy of the recipe each time: fit must not see an earlier fit's state.
            # As of where the refit's labels end: the same cutoffs as the gate's refit.
            as_of = (dt.datetime.fromisoformat(row["refit_validation"])
                     + dt.timedelta(days=definition.horizon_days))
            every = train_model(store, definition=definition,
                                model=type(recipe)(**recipe.get_params()), as_of=as_of,
                                promote=False).version
            every_model = load_model(store, every)
            fit_s = time.perf_counter() - t0
            oracle = truth.reindex(test.index).to_numpy()

            def auc(model: Any, test: Any = test, y: Any = y) -> float:
                return float(roc_auc_score(y, model.predict_proba(test)))

            stale = [auc(stale_models[v]) for v in reversed(history)]  # 1, 2, .. weeks old
            before = (row["decision"] or {}).get("champion_version")
            out = {"day": day, "date": row["date"], "n": len(test),
                   "churn_rate": float(y.mean()), "champion": auc(models[row["champion"]]),
                   "every_cycle": auc(every_model), "never": auc(models[first]),
                   "oracle": (float(roc_auc_score(y, oracle))
                              if not np.isnan(oracle).any() else None),
                   "champion_before": (auc(models[before]) if before in models else None),
                   "every_cycle_version": every, "every_cycle_stale": stale, "fit_s": fit_s}
            _append(log, out)
            done[day] = out
            stale_models[every] = every_model
            history = [*history, every][-STALE:]
            stale_models = {v: stale_models[v] for v in history}
            say(f"   cohort {out['date']}: n {out['n']:,}, churn {out['churn_rate']:.3f}; AUC "
                f"champion {out['champion']:.4f}, every cycle {out['every_cycle']:.4f}, never "
                f"{out['never']:.4f}, oracle {out['oracle'] or float('nan'):.4f}")
    return [done[d] for d in cycles]


def expected_auc_of(scores: Any, q: Any) -> float:
    """The expected ROC-AUC of ``scores`` when row i is positive with probability ``q_i`` (the
    truth), ties counted one half: with ``q`` = the scores themselves it is
    :func:`churnguard.monitor.expected_auc`.

    >>> import numpy as np
    >>> round(expected_auc_of(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0.1, 0.2, 0.8, 0.9])), 4)
    0.9286
    >>> expected_auc_of(np.array([1.0, 2.0]), np.array([0.0, 1.0]))   # ranked right for sure
    1.0
    """
    import numpy as np

    values, group = np.unique(np.asarray(scores, dtype=float), return_inverse=True)
    q = np.asarray(q, dtype=float)
    pos = np.bincount(group, weights=q, minlength=len(values))
    neg = np.bincount(group, weights=1.0 - q, minlength=len(values))
    self_pairs = np.bincount(group, weights=q * (1.0 - q), minlength=len(values))
    below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])
    numerator = np.sum(pos * below) + 0.5 * np.sum(pos * neg - self_pairs)
    return float(numerator / (pos.sum() * neg.sum() - self_pairs.sum()))


def label_truth(folder: Path, *, rows: list[dict[str, Any]],
                say: Any = print) -> list[dict[str, Any] | None]:
    """Per cycle with a label check, what the simulator's true churn probabilities say about the
    cohort it tested (the same customers: the stored run's, less the treated): the true gap of
    the churn rate over the mean probability and the true expected ROC-AUC of the run's scores
    against what its probabilities promise. The label alarm's null hypotheses are **truly
    false** when a gap exceeds its tolerance, and the change is **detectable** (our definition
    of "measurable") when it exceeds the tolerance by the test's critical value times its
    standard error: a test at the stated false-alarm rate then alarms about half the time.
    Appended to ``label_truth.jsonl``."""
    import numpy as np
    import pandas as pd
    from scipy.stats import norm

    from churnguard.monitor.estimate import _simulated_aucs, expected_auc
    from churnguard.monitor.realized import cohort_rows
    from churnguard.project import Project

    log = folder / "label_truth.jsonl"
    done = {row["day"]: row for row in _load_jsonl(log)}
    todo = [r for r in rows if r.get("label") and r["day"] not in done]
    if todo:
        project = Project.load(folder / "project")
        truth = pd.read_parquet(folder / "sim" / "truth" / "churn.parquet",
                                columns=["user_id", "cutoff", "p_churn"])
        truth["cutoff"] = (pd.to_datetime(truth["cutoff"]).dt.tz_convert(None)
                           .astype("datetime64[us]"))
        truth["user_id"] = truth["user_id"].astype(str)
        truth = truth.set_index(["user_id", "cutoff"])["p_churn"]
        with project.open_store(read_only=True) as store:
            for row in todo:
                label = row["label"]
                cohort = dt.datetime.fromisoformat(label["cohort"])
                kept = cohort_rows(store, as_of=cohort, version=label["model_version"],
                                   definition=project.config.churn,
                                   treatment_window_days=project.config.monitor
                                   .treatment_window_days)
                kept = kept[~kept["treated"] & kept["churned"].notna()]
                p = kept["p_churn"].to_numpy(dtype=float)
                q = truth.reindex(pd.MultiIndex.from_arrays(
                    [kept["user_id"], [pd.Timestamp(cohort)] * len(kept)])).to_numpy()
                z = norm.isf(label["alpha"] / 2)
                se = float(np.sqrt(np.sum(p * (1 - p)))) / len(p)
                gap = float(np.mean(q) - np.mean(p))
                promised = expected_auc(p)
                true_auc = expected_auc_of(p, q)
                sd = float(np.std(_simulated_aucs(p, draws=300, rng=np.random.default_rng(0))))
                auc_gap = true_auc - promised
                out = {"day": row["day"], "date": row["date"], "cohort": label["cohort"],
                       "n": len(p), "missing_truth": int(np.isnan(q).sum()),
                       "true_gap": gap, "true_auc_gap": auc_gap, "se": se, "auc_sd": sd,
                       "rate_false": abs(gap) > label["rate_tolerance"],
                       "auc_false": auc_gap < -label["auc_tolerance"],
                       "rate_detectable": bool(abs(gap) - label["rate_tolerance"] >= z * se),
                       "auc_detectable": bool(-auc_gap - label["auc_tolerance"] >= z * sd)}
                out["null_false"] = out["rate_false"] or out["auc_false"]
                out["detectable"] = out["rate_detectable"] or out["auc_detectable"]
                _append(log, out)
                done[row["day"]] = out
                say(f"   label truth {out['date']} (cohort {out['cohort'][:10]}): true gap "
                    f"{gap:+.3f}, true AUC gap {auc_gap:+.4f}; detectable {out['detectable']}")
    return [done.get(r["day"]) for r in rows]


def label_applies(folder: Path, rows: list[dict[str, Any]]) -> list[bool | None]:
    """Per cycle with a label check, whether it applied to the champion serving during the
    monitor step (the one the previous cycle left): that champion learned from none of the
    cohort's outcomes (:mod:`churnguard.monitor.performance`). Worked out from the registry, so
    that replays recorded before the rule took this form are judged by it too (their
    trajectories are the same up to the first alarm, which is all the detection line reads)."""
    from churnguard.monitor.performance import _learned_until
    from churnguard.project import Project

    project = Project.load(folder / "project")
    out: list[bool | None] = []
    with project.open_store(read_only=True) as store:
        serving = None
        for row in rows:
            label = row.get("label")
            if not label:
                out.append(None)
            else:
                until = _learned_until(store, serving, project.config.churn)
                matured = (dt.datetime.fromisoformat(label["cohort"])
                           + dt.timedelta(days=HORIZON))
                out.append(label["model_version"] == serving
                           or (until is not None and until < matured))
            serving = row["champion"]
    return out


def label_detection(rows: list[dict[str, Any]], truth: list[dict[str, Any] | None],
                    *, change_date: str) -> dict[str, Any]:
    """The label alarm against the truth: ``measurable`` = the first cycle on or after the
    change whose tested cohort is detectable (:func:`label_truth`); the first label alarm (and
    the first rejection, whether or not its model was still the champion) on or after the
    change; weeks between them. Before the change (and on a stable shop, everywhere): checks,
    rejections, and false ones (a rejection where the truth is inside both nulls)."""
    pairs = [(r, t) for r, t in zip(rows, truth, strict=True) if r.get("label") and t]

    def rejected(r: dict[str, Any]) -> bool:
        return bool(r["label"]["calibration_alarm"] or r["label"]["auc_alarm"])

    def alarmed(r: dict[str, Any], t: dict[str, Any]) -> bool:  # rejected, and applies
        return rejected(r) and bool(t.get("applies", r["label"].get("alarm")))

    before = [(r, t) for r, t in pairs if r["date"] < change_date]
    after = [(r, t) for r, t in pairs if r["date"] >= change_date]

    measurable = next((r["date"] for r, t in after if t["detectable"]), None)
    null_false = next((r["date"] for r, t in after if t["null_false"]), None)
    alarm = next((r["date"] for r, t in after if alarmed(r, t)), None)
    reject = next((r["date"] for r, t in after if rejected(r)), None)

    def weeks(date: str | None) -> float | None:
        if date is None or measurable is None:
            return None
        return (dt.date.fromisoformat(date) - dt.date.fromisoformat(measurable)).days / 7

    return {"checks_before": len(before),
            "rejected_before": sum(rejected(r) for r, _ in before),
            "false_before": sum(rejected(r) and not t["null_false"] for r, t in before),
            "null_false_before": sum(t["null_false"] for _, t in before),
            "checks_after": len(after), "rejected_after": sum(rejected(r) for r, _ in after),
            "false_after": sum(rejected(r) and not t["null_false"] for r, t in after),
            "measurable": measurable, "null_false_from": null_false,
            "first_alarm": alarm, "first_reject": reject,
            # Cycles recorded before the alarm applied to a champion's successors (their label
            # figures lack "applies"): alarms after the first did not make challenges due.
            "older_rule": any("applies" not in r["label"] for r, _ in pairs),
            "alarm_weeks": weeks(alarm), "reject_weeks": weeks(reject),
            "first_check": pairs[0][0]["date"] if pairs else None}


def staleness_ceiling(truth: list[dict[str, Any]], *, since: str | None) -> dict[str, Any]:
    """From ``since`` on: on how many cohorts a model retrained k weeks earlier (k = 1..STALE,
    no gate) is within GAP of the one retrained that cycle: what any policy that deploys a
    retrain at most k weeks old could reach at this cohort size."""
    later = [t for t in truth if since is not None and t["date"] >= since]
    out = {}
    for k in range(1, STALE + 1):
        judged = [t for t in later if len(t.get("every_cycle_stale", [])) >= k]
        out[k] = {"judged": len(judged),
                  "within": sum(abs(t["every_cycle"] - t["every_cycle_stale"][k - 1]) <= GAP
                                for t in judged)}
    return out



# -- the verdicts ---------------------------------------------------------------------------------
def gate_checks(rows: list[dict[str, Any]], truth: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every gate decision of the replay against the truth on its test cohort (module
    docstring, 4): ``wrong`` when a promotion deployed a model truly worse by more than 0.01
    than the one it replaced, ``missed`` when a kept challenge left a champion truly worse by
    more than 0.01 than the refit it declined."""
    checks = []
    for row, t in zip(rows, truth, strict=True):
        d = row["decision"]
        if not d or d.get("outcome") in (None, "first", "no-evidence"):
            continue
        true_delta = None
        if d["outcome"] in ("promoted", "rolled-back") and t["champion_before"] is not None:
            true_delta = t["champion"] - t["champion_before"]
        elif d["outcome"] == "kept":
            true_delta = t["every_cycle"] - t["champion"]
        checks.append({"date": row["date"], "outcome": d["outcome"],
                       "gate_delta": d.get("delta_auc"), "gate_lower": d.get("delta_auc_lower"),
                       "true_delta": true_delta,
                       "wrong": d["outcome"] in ("promoted", "rolled-back")
                       and true_delta is not None and true_delta < -GAP,
                       "missed": d["outcome"] == "kept" and true_delta is not None
                       and true_delta > GAP})
    return checks


def detection(rows: list[dict[str, Any]], change: dict[str, Any]) -> dict[str, Any]:
    """Weeks from the change becoming measurable to the first alarm and the first promotion at
    or after it (None when none came in the replay)."""
    measurable = dt.date.fromisoformat(change["first_changed_labels_matured"])
    wholly = dt.date.fromisoformat(change["first_wholly_changed_labels_matured"])
    changed = dt.date.fromisoformat(change["change_date"])

    def first(pred: Any) -> str | None:
        return next((r["date"] for r in rows if dt.date.fromisoformat(r["date"]) >= changed
                     and pred(r)), None)

    alarm = first(lambda r: r["drifted"])
    promotion = first(lambda r: (r["decision"] or {}).get("outcome") == "promoted")

    def weeks(date: str | None, since: dt.date) -> float | None:
        return None if date is None else (dt.date.fromisoformat(date) - since).days / 7

    return {"change": change["change_date"], "measurable": measurable.isoformat(),
            "wholly": wholly.isoformat(), "first_alarm": alarm, "first_promotion": promotion,
            "alarm_weeks": weeks(alarm, measurable),
            "promotion_weeks": weeks(promotion, measurable),
            "promotion_weeks_wholly": weeks(promotion, wholly)}


def recovery(truth: list[dict[str, Any]], *, change_date: str) -> dict[str, Any]:
    """The Done-when line on recovery: R = the first cohort after the change from which the
    every-cycle model stays at least 0.02 above the never-retrained one (it has recovered);
    from R + 4 weeks on, is the champion within 0.01 of it and 0.02 above never-retrained?"""
    after = [t for t in truth if t["date"] >= change_date]
    recovered = next((i for i in range(len(after))
                      if all(a["every_cycle"] - a["never"] >= MARGIN for a in after[i:])), None)
    if recovered is None:
        return {"recovered": None}
    later = after[recovered + LAG:]
    return {"recovered": after[recovered]["date"], "judged": len(later),
            "within": sum(abs(t["every_cycle"] - t["champion"]) <= GAP for t in later),
            "above_never": sum(t["champion"] - t["never"] >= MARGIN for t in later),
            "worst_gap": max((t["every_cycle"] - t["champion"] for t in later), default=None)}


def summarize(runs: list[dict[str, Any]], *, args: argparse.Namespace, command: str) -> str:
    import numpy as np

    lines = [f"{args.users:,} customers, seed(s) {args.seeds}; cycles every 7 days from day "
             f"{args.start_day} ({day_time(args.start_day):%Y-%m-%d}) for {args.weeks} weeks "
             f"(so {args.weeks + 1} cycles per scenario); the `drift` change on day "
             f"{args.change_day} ({day_time(args.change_day):%Y-%m-%d}); {HORIZON}-day horizon; "
             f"churnguard.toml defaults (first model and gate recipe `gbdt`, `retrain_every_days` "
             f"= {args.retrain_every_days}; monitor: PSI against the population 7 days earlier "
             "(`reference = \"lag\"`), bootstrap null of 500, BH at FDR 0.01; the label alarm on "
             "the newest matured scoring run at a false-alarm rate of 0.01 per cycle, tolerances "
             "0.03 on the churn rate and 0.02 on ROC-AUC); "
             "plans and deliveries off (no `plan_budget`: the default), so plan, deliver and "
             "measure skip. The cycle is the library's `run_cycle(now=week end)` (what "
             "`churnguard run --now` runs). Wall times come from a 2-core machine shared with "
             "other jobs (load averages up to about 13): noisy, upper figures.", ""]
    for run in runs:
        rows, truth = run["rows"], run["truth"]
        timed = timed_rows(rows)
        walls = np.array([r["wall_s"] for r in timed])
        setup = ", ".join(f"{k} {v:.0f} s" for k, v in run["setup"].items())
        challenge = np.array([r["step_s"].get("challenge", 0.0) for r in timed])
        # Cycles that trained a model: the first, and every challenge that was judged (kept or
        # promoted: its twin, and for a promotion the refit); no-evidence trains nothing.
        trained = np.array([(r["decision"] or {}).get("outcome") in ("first", "kept", "promoted")
                            for r in timed])
        steps = sorted({s for r in rows for s in r["step_s"]},
                       key=["ingest", "score", "monitor", "challenge", "plan", "deliver",
                            "measure"].index)
        lines.append(f"### `{run['scenario']}`, seed {run['seed']}")
        lines.append("")
        lines.append("| cycle | alarms / checks | label check: cohort, rate gap (true), AUC gap "
                     "(true) | gate | champion | AUC champion | every cycle | "
                     "never | oracle | cycle s | " + " | ".join(f"{s} s" for s in steps) + " |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(steps))
        for r, t, lt in zip(rows, truth, run["label_truth"], strict=True):
            d = r["decision"] or {}
            gate = d.get("outcome", "—")
            if d.get("delta_auc_lower") is not None:
                gate += f" (ΔAUC {d['delta_auc']:+.4f}, lower {d['delta_auc_lower']:+.4f}"
                gate += "".join(f"; {why}" for why, said in (
                    ("ΔAUC bound", "lower bound"), ("ECE", "ECE is")) if d.get("outcome") == "kept"
                    and said in (d.get("reason") or "")) + ")"
            lines.append(
                f"| {r['date']} | {r['alarms']}/{r['checks']} | {_label_cell(r, lt)} | {gate} | "
                f"{(r['champion'] or '')[-8:]} | {t['champion']:.4f} | {t['every_cycle']:.4f} | "
                f"{t['never']:.4f} | {_round(t['oracle'])}"
                f" | {r['wall_s']:.1f}{' (paused)' if r.get('paused') else ''} | "
                + " | ".join(f"{r['step_s'].get(s, 0):.1f}" for s in steps) + " |")
        lines.append("")
        pre = [r for r in rows
               if run["scenario"] != "drift" or r["date"] < run["change"]["change_date"]]
        when = " before the change" if run["scenario"] == "drift" else ""
        checks = sum(r["checks"] for r in pre)
        alarms = sum(r["alarms"] for r in pre)
        lines.append(f"- Feature checks alarming{when}: {alarms} of {checks} "
                     f"({alarms / max(checks, 1):.2%}) over {len(pre)} cycles; "
                     f"cycles with an alarm: {sum(r['drifted'] for r in pre)}.")
        if run.get("lag"):
            mine = [x for x in run["lag"] if run["scenario"] != "drift"
                    or x["date"] < run["change"]["change_date"]]
            after = [x for x in run["lag"] if run["scenario"] == "drift"
                     and x["date"] >= run["change"]["change_date"]]
            n, a = sum(x["checks"] for x in mine), sum(x["alarms"] for x in mine)
            lines.append(
                f"- The same weekly batches against the population {run['lag_days']} days "
                f"earlier (`reference = \"lag\"`, checked after the replay, feature checks only): "
                f"{a} of {n} alarm ({a / max(n, 1):.2%})"
                + (f" before the change; after it {sum(x['alarms'] for x in after)} of "
                   f"{sum(x['checks'] for x in after)}, first on "
                   f"{next((x['date'] for x in after if x['alarms']), 'none')}"
                   if run["scenario"] == "drift" else "") + ".")
        lab = run["labels"]
        lines.append(
            f"- Label checks{when}: {lab['checks_before']} (from {lab['first_check'] or '—'}); "
            f"rejected {lab['rejected_before']}, of which false (the truth inside both nulls) "
            f"{lab['false_before']}; cohorts whose truth is outside a null: "
            f"{lab['null_false_before']}."
            + (f" After the change: {lab['checks_after']} checks, {lab['rejected_after']} "
               f"rejected ({lab['false_after']} false)." if run["scenario"] == "drift" else ""))
        gates = run["gate"]
        lines.append(f"- Gate decisions checked against the truth: {len(gates)} "
                     f"({sum(g['outcome'] == 'promoted' for g in gates)} promoted, "
                     f"{sum(g['outcome'] == 'kept' for g in gates)} kept, "
                     f"{sum(g['outcome'] == 'rolled-back' for g in gates)} rolled back); "
                     f"promoted a model truly worse by > {GAP}: {sum(g['wrong'] for g in gates)}; "
                     f"kept a champion truly worse than the refit by > {GAP}: "
                     f"{sum(g['missed'] for g in gates)}. True ΔAUC of the promotions: "
                     + (", ".join(f"{g['true_delta']:+.4f}" for g in gates
                                  if g['outcome'] == 'promoted' and g['true_delta'] is not None)
                        or "none") + ".")
        lines.append(f"- Wall time per cycle: median {np.median(walls):.1f} s, max "
                     f"{walls.max():.1f} s; with a challenge (gate or first model) median "
                     f"{_median(walls[trained])}, without {_median(walls[~trained])}; peak RSS "
                     f"of the replay process {max(r['peak_rss_mib'] for r in rows):,.0f} MiB. "
                     f"Steps other than the challenge, per cycle: median "
                     f"{_median(walls - challenge)} (a cycle without retraining). "
                     f"Setup: {setup or 'cached'}"
                     f"; all cycles {walls.sum():,.0f} s; the truth phase's every-cycle fits "
                     f"{sum(t['fit_s'] for t in truth):,.0f} s."
                     + (f" Left out of these times: {len(rows) - len(timed)} cycle(s) whose "
                        f"process was paused while they ran (" + ", ".join(
                            f"{r['date']}: {r['paused']}" for r in rows if r.get("paused"))
                        + ")." if len(timed) < len(rows) else ""))
        if run["scenario"] == "drift":
            det, rec = run["detection"], run["recovery"]
            lines.append(
                f"- Detection: change on {det['change']}; changed labels first matured "
                f"{det['measurable']}, wholly changed ones {det['wholly']}. First monitor alarm "
                f"on or after the change: {det['first_alarm'] or 'none'}"
                + (f" ({det['alarm_weeks']:+.1f} weeks from measurable)"
                   if det['alarm_weeks'] is not None else "")
                + f"; first promotion: {det['first_promotion'] or 'none'}"
                + (f" ({det['promotion_weeks']:+.1f} weeks from measurable, "
                   f"{det['promotion_weeks_wholly']:+.1f} from wholly changed)"
                   if det['promotion_weeks'] is not None else "") + ".")
            lines.append(
                f"- Label alarm: the tested cohort's truth is outside the alarm's null from the "
                f"cycle at {lab['null_false_from'] or 'none'}; the change is measurable (the "
                f"truth beyond a tolerance by the test's critical value) from the cycle at "
                f"{lab['measurable'] or 'none'}; first label alarm {lab['first_alarm'] or 'none'}"
                + (f" ({lab['alarm_weeks']:+.0f} weeks)" if lab['alarm_weeks'] is not None
                   else "")
                + f"; first rejection whatever the model {lab['first_reject'] or 'none'}"
                + (f" ({lab['reject_weeks']:+.0f} weeks)" if lab['reject_weeks'] is not None
                   else "") + "."
                + (" These cycles were recorded while the label alarm applied only to the model "
                   "that scored the cohort; the alarm column is judged by the current rule (the "
                   "champion serving learned none of the cohort's outcomes, from the registry), "
                   "which gives the same cycles up to the first alarm; the challenges later "
                   "alarms would have made due between scheduled ones did not run."
                   if lab.get("older_rule") else ""))
            if rec.get("recovered"):
                lines.append(
                    f"- Recovery: the every-cycle model stays ≥ {MARGIN} above never-retrained "
                    f"from the cohort at {rec['recovered']} on; of the {rec['judged']} cohorts "
                    "from "
                    f"{LAG} weeks later, the champion is within {GAP} of it on {rec['within']} and "
                    f"≥ {MARGIN} above never-retrained on {rec['above_never']} (largest gap "
                    f"{_round(rec['worst_gap'])}).")
            else:
                lines.append("- Recovery: within the replay, the every-cycle model never stays "
                             f"≥ {MARGIN} above the never-retrained one to the end.")
        lines.append("")
    lines += verdicts(runs)
    return "\n".join(lines)


def _label_cell(row: dict[str, Any], truth: dict[str, Any] | None) -> str:
    label = row.get("label")
    if not label:
        return "—"
    rejects = label["calibration_alarm"] or label["auc_alarm"]
    applies = (truth or {}).get("applies", label.get("alarm"))
    flag = (" **ALARM**" if rejects and applies else
            " (rejects; the champion learned these outcomes)" if rejects else "")
    true = (f" ({truth['true_gap']:+.3f})", f" ({truth['true_auc_gap']:+.4f})") if truth \
        else ("", "")
    auc = "—" if label["auc_gap"] is None else f"{label['auc_gap']:+.4f}"
    return (f"{label['cohort'][5:10]}, {label['calibration_gap']:+.3f}{true[0]}, "
            f"{auc}{true[1]}{flag}")


def _round(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def timed_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cycles whose wall time counts: all but those marked ``"paused"`` in cycles.jsonl
    (their process was stopped while they ran; the value says why). Their other figures stand.

    >>> [r["date"] for r in timed_rows([{"date": "a"}, {"date": "b", "paused": "SIGSTOP"}])]
    ['a']
    """
    return [r for r in rows if not r.get("paused")]


def _median(values: Any) -> str:
    import numpy as np

    return f"{np.median(values):.1f} s" if len(values) else "n/a (none)"


def _lag_verdict(runs: list[dict[str, Any]]) -> str:
    lag = [x for r in runs for x in (r.get("lag") or [])]
    if not lag:
        return ""
    n, a = sum(x["checks"] for x in lag), sum(x["alarms"] for x in lag)
    return (f"; {'met' if a <= 0.01 * n else 'not met'} against the population "
            f"{runs[0]['lag_days']} days earlier ({a / max(n, 1):.2%} of {n:,})")


def verdicts(runs: list[dict[str, Any]]) -> list[str]:
    """The Done-when lines of issue 18 this replay measures, each met or not at this size."""
    out = ["### Against the Done-when lines (at this size)", ""]
    stable = [r for r in runs if r["scenario"] != "drift"]
    drift = [r for r in runs if r["scenario"] == "drift"]
    if stable:
        checks = sum(x["checks"] for r in stable for x in r["rows"])
        alarms = sum(x["alarms"] for r in stable for x in r["rows"])
        wrong = sum(g["wrong"] for r in stable for g in r["gate"])
        labels = [r["labels"] for r in stable]
        n_label = sum(x["checks_before"] for x in labels)
        rejected = sum(x["rejected_before"] for x in labels)
        out.append(f"- Stable replays, at most 1% of feature checks alarm: "
                   f"{'met' if alarms <= 0.01 * checks else 'not met'} with the default "
                   f"reference, the population 7 days earlier ({alarms} of {checks:,}, "
                   f"{alarms / max(checks, 1):.2%})" + _lag_verdict(stable) + ". The label "
                   f"alarm (one test a cycle, stated false-alarm rate 0.01 while the model "
                   f"holds): {rejected} of {n_label} checks rejected, "
                   f"{sum(x['false_before'] for x in labels)} of them false.")
        out.append(f"- Stable replays, no promotion of a model truly worse by more than {GAP}: "
                   f"{'met' if not wrong else 'not met'} ({wrong} of "
                   f"{sum(g['outcome'] == 'promoted' for r in stable for g in r['gate'])} "
                   "promotions).")
    for r in drift:
        det, rec, lab = r["detection"], r["recovery"], r["labels"]
        weeks = lab["alarm_weeks"]
        feature = ("no feature alarm on or after the change" if det["first_alarm"] is None
                   else f"the first feature alarm on or after the change: {det['first_alarm']}")
        out.append(
            f"- Drift (seed {r['seed']}), flagged within one weekly cycle of becoming measurable: "
            + ("not measured (the change never became measurable for the label alarm in the "
               "replay)" if lab["measurable"] is None else
               "not met (no label alarm)" if weeks is None else
               f"{'met' if weeks <= 1 else 'not met'} (label alarm {weeks:+.0f} weeks after "
               f"the cycle at {lab['measurable']}, the first whose tested cohort is detectable "
               f"by the truth)")
            + f"; {feature}; first promotion "
            + ("none" if det["promotion_weeks"] is None else f"{det['first_promotion']}") + ".")
        after = [t for t in r["truth"] if t["date"] >= r["change"]["change_date"]]
        r["after_change"] = len(after)
        r["trailing"] = sum(t["every_cycle"] - t["champion"] > GAP for t in after)
        if rec.get("recovered") is None:
            out.append(f"- Drift (seed {r['seed']}), the champion back within 0.01 of the "
                       "every-cycle model 4 cycles "
                       "after it recovers and 0.02 above never-retrained: not measured (the "
                       "every-cycle model does not stay 0.02 above never-retrained in the replay)")
            continue
        ok = rec["within"] == rec["judged"] == rec["above_never"]
        verdict = ("not measured (the replay ends before " f"{LAG} cycles after it recovers)"
                   if not rec["judged"] else "met" if ok else "not met")
        ceiling = r.get("ceiling") or {}
        ceiling_text = "; ".join(f"{k} week(s) old: {c['within']} of {c['judged']}"
                                 for k, c in ceiling.items() if c["judged"])
        out.append(f"- Drift (seed {r['seed']}), the champion back within {GAP} of the "
                   "every-cycle model "
                   f"{LAG} cycles after it recovers, and {MARGIN} above never-retrained from "
                   f"then on: {verdict} (the every-cycle model recovers at "
                   f"{rec['recovered']}; within on {rec['within']} of {rec['judged']} "
                   f"cohorts, above on {rec['above_never']}, largest gap "
                   f"{_round(rec['worst_gap'])}). Before that, the champion "
                   f"trails the every-cycle model by more than {GAP} on "
                   f"{r['trailing']} of {r['after_change']} cohorts after the change. "
                   "The ceiling at this cohort size: from the recovery on, a model retrained "
                   f"k weeks before each cohort (no gate) is within {GAP} of the one retrained "
                   f"that week on: {ceiling_text or 'not measured'}.")
    out.append("- Cycle time on 20,000 customers, p99 of the risk endpoint during cycles, "
               "real-time answers, kill -9 and CLI-while-serving: not measured here (this replay "
               "runs no service and plans nothing: benchmarks/bench_cycle.py and "
               "bench_service.py measure those; the crash and CLI lines are tests).")
    return out


def run_one(*, scenario: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    cal = calendar(start_day=args.start_day, weeks=args.weeks, days=args.days)
    folder = DATA / (f"operate_{scenario}_{args.users}_{cal['days']}_{args.change_day}_"
                     f"{args.start_day}_{args.retrain_every_days}_{seed}")
    finished = FINISHED / f"{folder.name}.json"
    if args.fresh and folder.exists():
        import shutil

        shutil.rmtree(folder)
    if finished.exists() and not args.fresh:
        print(f"== {scenario}, seed {seed}: the finished run in {finished}", flush=True)
        return {**json.loads(finished.read_text()), "read_from": finished.name}
    folder.mkdir(parents=True, exist_ok=True)
    print(f"== {scenario}, seed {seed}: {folder}", flush=True)
    setup = prepare(folder, scenario=scenario, users=args.users, days=cal["days"],
                    change_day=args.change_day, seed=seed, cycles=cal["cycles"],
                    retrain_every_days=args.retrain_every_days)
    rows = replay(folder, cycles=cal["cycles"], say=lambda m: print(m, flush=True))
    truth = evaluate(folder, cycles=cal["cycles"], rows=rows, say=lambda m: print(m, flush=True))
    change_path = folder / "sim" / "truth" / "change.json"
    change = json.loads(change_path.read_text()) if change_path.exists() else None
    lag = (lag_checks(folder, cycles=cal["cycles"], lag_days=args.lag_check,
                      say=lambda m: print(m, flush=True)) if args.lag_check else None)
    labels = label_truth(folder, rows=rows, say=lambda m: print(m, flush=True))
    for t, applies in zip(labels, label_applies(folder, rows), strict=True):
        if t is not None:
            t["applies"] = applies
    run = {"scenario": scenario, "seed": seed, "rows": rows, "truth": truth, "setup": setup,
           "lag": lag, "lag_days": args.lag_check, "label_truth": labels,
           "gate": gate_checks(rows, truth), "change": change or {"change_date": "9999"}}
    run["labels"] = label_detection(rows, labels, change_date=run["change"]["change_date"])
    if change:
        run["detection"] = detection(rows, change)
        run["recovery"] = recovery(truth, change_date=change["change_date"])
        run["ceiling"] = staleness_ceiling(truth, since=run["recovery"].get("recovered"))
    FINISHED.mkdir(parents=True, exist_ok=True)
    tmp = finished.with_suffix(".part")
    tmp.write_text(json.dumps(run, default=str, indent=None, separators=(",", ":")) + "\n")
    tmp.rename(finished)
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--start-day", type=int, default=392,
                        help="day index of the first cycle (it trains the first model)")
    parser.add_argument("--weeks", type=int, default=34, help="weekly cycles after the first")
    parser.add_argument("--change-day", type=int, default=420)
    parser.add_argument("--days", type=int, default=None,
                        help="days simulated (default: the shortest in which every cohort matures)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--scenarios", default="drift,default")
    parser.add_argument("--retrain-every-days", type=int, default=28)
    parser.add_argument("--lag-check", type=int, default=0, metavar="DAYS",
                        help="after the replay, the feature checks again against the population "
                             "DAYS earlier (reference = lag); 0: skip")
    parser.add_argument("--fresh", action="store_true", help="discard cached runs and start over")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    runs = [run_one(scenario=s, seed=int(seed), args=args)
            for seed in args.seeds.split(",") for s in args.scenarios.split(",")]
    flags = "".join(f" {f} {v}" for f, v, d in (
        ("--users", args.users, 3000), ("--start-day", args.start_day, 392),
        ("--weeks", args.weeks, 34), ("--change-day", args.change_day, 420),
        ("--days", args.days, None), ("--seeds", args.seeds, "0"),
        ("--scenarios", args.scenarios, "drift,default"),
        ("--retrain-every-days", args.retrain_every_days, 28),
        ("--lag-check", args.lag_check, 0)) if v != d)
    command = f"python benchmarks/bench_operate.py{flags}"
    body = summarize(runs, args=args, command=command)
    read = [r["read_from"] for r in runs if "read_from" in r]
    body += (f"\nThis invocation took {time.perf_counter() - started:,.0f} s (what was cached "
             "under benchmarks/.data is read, not rerun; the times per scenario are above).")
    if read:
        body += (f" {len(read)} of the {len(runs)} runs were not replayed by it but read from "
                 "the finished runs committed by earlier invocations with the same settings "
                 "(`git log -- benchmarks/runs/operate` says when): "
                 + ", ".join(f"`{r}`" for r in read) + ".")
    body += "\n"
    print()
    print(body)
    (DATA / "bench_operate_runs.json").write_text(json.dumps(runs, default=str, indent=1))
    if not args.no_write:
        # The issue's size owns the section "operate"; a smaller replay (the default, a quick
        # check) writes beside it instead of over it.
        name, title = (("operate", "") if args.users >= ISSUE_USERS else
                       (f"operate_{args.users}", f", {args.users:,} customers"))
        write_section(name, f"## Operate: weekly cycles replayed (issue 18{title})\n\n" + body,
                      command=command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
