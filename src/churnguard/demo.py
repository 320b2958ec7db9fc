"""The main job end to end on a simulated shop, in the embedded store.

simulate → create the project → ingest → (pretrain the behaviour encoder) → backtest out of time
against the oracle → train the champion → score with reasons → measure the last campaign and plan
the next → write the report. ``churnguard demo`` (and ``make demo``) is a thin shell over
:func:`run_demo`; what the user sees while it runs goes through a :class:`DemoView`, so that the
pipeline itself neither prints nor knows about terminals.

Rerunning is safe: the same seed gives the same data, ingestion adds nothing twice and the
campaign of the same day is planned once.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from churnguard.files import write_table
from churnguard.models.catalog import KINDS, demo_models, demo_pretrain_config, demo_settings
from churnguard.project import CONFIG_FILENAME, Project, init_project
from churnguard.report.formatting import probability
from churnguard.store import Store


class DemoView(Protocol):
    """What a face shows while the demo runs (the CLI: numbered steps, spinners, tables)."""

    def step(self, number: int, total: int, text: str) -> AbstractContextManager[None]:
        """One numbered step of the pipeline, around its work."""

    def note(self, text: str) -> None:
        """A line of result under the current step."""

    def stages(self, label: str) -> AbstractContextManager[Callable[[str], None]]:
        """A display fed with the stage messages of a long operation."""

    def days(self, label: str) -> AbstractContextManager[Callable[[int, int], None]]:
        """A display fed with ``(done, total)`` days of simulation."""

    def epochs(self, label: str, total: int) -> AbstractContextManager[Callable[[str], None]]:
        """A display fed with "epoch k/n ..." messages."""

    def leaderboard(self, document: dict[str, Any], chosen: str | None) -> None:
        """The backtest's leaderboard, the chosen champion marked."""

    def plan_summary(self, summary: dict[str, Any]) -> None:
        """A plan's summary."""


@dataclass(frozen=True, kw_only=True)
class DemoOutcome:
    """Where the demo put its results, and how long it took."""

    root: Path
    data_dir: Path
    scores: Path
    plan: Path
    report: Path
    seconds: float


def format_duration(seconds: float) -> str:
    """'12.3 s' under a minute, else '4 min 05 s'.

    >>> format_duration(12.34), format_duration(245.2)
    ('12.3 s', '4 min 05 s')
    """
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


class _Steps:
    """Numbers the steps and hands each to the view."""

    def __init__(self, view: DemoView, total: int) -> None:
        self.view, self.total, self.done = view, total, 0

    @contextmanager
    def __call__(self, text: str) -> Iterator[None]:
        self.done += 1
        with self.view.step(self.done, self.total, text):
            yield


def run_demo(root: Path, *, view: DemoView, n_users: int = 20_000, days: int = 730, seed: int = 7,
             budget: float | None = None, behaviour: bool = True) -> DemoOutcome:
    """Run the main job on a simulated shop of ``n_users`` customers over ``days`` days in the
    project folder ``root`` (created when missing; the shop's files go to ``root/data``)."""
    from churnguard.simulate import simulate as run_simulation

    began = time.perf_counter()
    step = _Steps(view, 9 if behaviour else 8)
    data_dir = root / "data"
    with step(f"Simulating a shop of {n_users:,} customers over {days} days"):
        with view.days("Simulating") as update:
            shop = run_simulation(n_users=n_users, days=days, seed=seed, out_dir=data_dir,
                                  progress=update)
        view.note(f"{shop.n_events:,} events written to {data_dir}")
    with step(f"Creating the project in {root}"):
        project, _ = init_project(root)
        _point_at_truth(project, shop.paths["truth_churn"])
        project = Project.load(root)
    with project.open_store() as store:
        with step("Ingesting into the embedded store"):
            _ingest_shop(project, store, shop.paths, view)
        champion = _backtest(project, store, step, view, behaviour=behaviour)
        with step(f"Training the champion, {champion} (the best out-of-time ROC-AUC among the "
                  "models that give reasons), on the newest cutoffs"):
            _train_champion(project, store, champion, view)
        with step("Scoring every customer in the population, with reasons"):
            scored = _score(project, store, root / "scores.csv", view)
        with step("Measuring the last campaign and planning the next one"):
            _demo_campaign(project, store, budget=budget, population=len(scored.scores),
                           as_of=scored.as_of, out=root / "plan.csv", view=view)
        with step("Writing the report"):
            _write_report(project, store, root / "report.html")
    return DemoOutcome(root=root, data_dir=data_dir, scores=root / "scores.csv",
                       plan=root / "plan.csv", report=root / "report.html",
                       seconds=time.perf_counter() - began)


def _ingest_shop(project: Project, store: Store, paths: dict[str, Path], view: DemoView) -> None:
    from churnguard.ingest import IngestError, ingest_files

    try:
        for kind in ("items", "users", "events", "campaigns"):
            with view.stages(f"Ingesting {kind}") as update:
                report = ingest_files(store, kind=kind, files=[paths[kind]],
                                      config=project.config.ingest, progress=update)
            view.note(f"{kind}: {report.rows_added:,} added, "
                      f"{report.rows_duplicate:,} already there")
    except IngestError as exc:  # the simulator's own files must always be valid
        raise RuntimeError(f"the simulated data failed validation: {exc}") from exc


def _backtest(project: Project, store: Store, step: _Steps, view: DemoView, *,
              behaviour: bool) -> str:
    """Backtest the demo's models out of time (pretraining first, with ``behaviour``), keep the
    leaderboard in the store and in backtest.json, and return the champion's name."""
    from churnguard.cutoffs import backtest_cutoffs
    from churnguard.evaluate import backtest as run_backtest
    from churnguard.reporting import backtest_document, save_backtest

    definition = project.config.churn
    truth = project.simulation_truth()
    test, fit_cutoffs, validation = backtest_cutoffs(
        store, definition=definition, candidates=_truth_cutoffs(truth))
    models: list[Any] = ["recency", "btyd", *demo_models(["gbdt"])]
    if behaviour:
        models += _pretrain(store, step, view, cutoff=validation,
                            out=project.root / "pretrained")
    with step("Backtesting out of time: recency rule, BTYD, gradient-boosted trees"
              + (", behaviour, behaviour+gbdt" if behaviour else "") + ", oracle"):
        with view.stages("Backtest") as update:
            measured = run_backtest(store, definition=definition, test_cutoff=test,
                                    train_cutoffs=[*fit_cutoffs, validation], models=models,
                                    truth=truth, progress=update)
        save_backtest(store, measured)
        (project.root / "backtest.json").write_text(
            json.dumps(backtest_document(measured), indent=2) + "\n", encoding="utf-8")
        champion = _champion(measured)
        view.leaderboard(measured.to_dict(), champion)
        view.note(", ".join(f"{name} {format_duration(seconds)}"
                            for name, seconds in measured.seconds.items()))
    return champion


def _train_champion(project: Project, store: Store, champion: str, view: DemoView) -> None:
    from churnguard.training import train_model

    (estimator,) = demo_models([champion])  # pretrains inside fit, as the backtested one did
    with view.stages(f"Training {champion}") as update:
        trained = train_model(store, definition=project.config.churn, model=estimator,
                              promote=True, progress=update)
    view.note(trained.version)


def _score(project: Project, store: Store, out: Path, view: DemoView) -> Any:
    from churnguard.scoring import score_customers

    with view.stages("Scoring") as update:
        scored = score_customers(store, definition=project.config.churn,
                                 tiers=project.config.scoring, progress=update)
    write_table(scored.scores, out)
    tiers = scored.scores["risk_tier"].value_counts()
    view.note(f"{len(scored.scores):,} customers: {tiers.get('high', 0):,} high, "
              f"{tiers.get('medium', 0):,} medium, {tiers.get('low', 0):,} low risk")
    top = scored.scores.iloc[0]
    view.note(f"most at risk: {top['user_id']} ({probability(top['p_churn'], 0)}): "
              f"{top['reason_1']}")
    return scored


def _write_report(project: Project, store: Store, out: Path) -> None:
    from churnguard.report import render_report
    from churnguard.reporting import build_report_data

    data = build_report_data(store, title=f"Churn report — {project.root.name}",
                             definition=project.config.churn)
    render_report(data, out)


def _truth_cutoffs(truth: Any) -> list[dt.datetime] | None:
    """The cutoffs the simulator computed the truth at (the backtest tests on one of them)."""
    import pandas as pd

    if truth is None:
        return None
    stamps = pd.to_datetime(truth["cutoff"].drop_duplicates())
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return [s.to_pydatetime() for s in stamps]


def _pretrain(store: Store, step: _Steps, view: DemoView, *, cutoff: dt.datetime,
              out: Path) -> list[Any]:
    """Pretrain the demo's encoder on the events before the backtest's validation cutoff (what
    the backtested models may see; no labels) and return the behaviour models that use it."""
    from churnguard.models.behaviour.pretrain import pretrain as run_pretrain

    size = demo_settings("behaviour")
    with step(f"Pretraining the behaviour encoder without labels on at most "
              f"{size['pretrain_max_customers']:,} customers' events before {cutoff:%Y-%m-%d} "
              f"(newest {size['max_len']} per customer, at most {size['pretrain_epochs']} "
              "epochs)"):
        with view.epochs("Pretraining", total=size["pretrain_epochs"]) as update:
            done = run_pretrain(store, cutoff=cutoff, config=demo_pretrain_config(),
                                out_dir=out, progress=update)
        last = done.history[done.best_epoch] if 0 <= done.best_epoch < len(done.history) else {}
        view.note(f"{done.n_customers:,} customers, {len(done.history)} epoch(s), best "
                  f"held-out loss {last.get('heldout_loss', float('nan')):.3f}; encoder in "
                  f"{done.path}")
    return demo_models(["behaviour", "behaviour+gbdt"], pretrained=str(done.path))


def _champion(measured: Any) -> str:
    """The backtested model with the best out-of-time ROC-AUC among those that give reasons
    (the demo scores every customer with reasons); the oracle is not a model."""
    ranked = [m for m in measured.metrics if m.name in measured.models
              and KINDS[m.name].gives_reasons and math.isfinite(m.roc_auc)]
    if not ranked:
        raise RuntimeError("no backtested model gives reasons; the demo needs one to score with")
    return max(ranked, key=lambda m: m.roc_auc).name


def _demo_campaign(project: Project, store: Store, *, budget: float | None, population: int,
                   as_of: dt.datetime, out: Path, view: DemoView) -> None:
    """Measure the newest fully observed campaign, then plan (once per day) and export."""
    from churnguard.campaigns import newest_measurable_campaign, stored_plan
    from churnguard.intervene.deliver import export_plan

    iv = project.config.intervene
    observed = newest_measurable_campaign(store, window_days=iv.window_days)
    if observed is not None:
        _measure(store, observed, outcome_type=iv.outcome_type, window_days=iv.window_days,
                 view=view)
    campaign_id = f"demo-{as_of:%Y%m%d}"
    saved = stored_plan(store, campaign_id)
    if saved is not None:
        summary = saved.summary
        view.note(f"campaign {campaign_id} was planned before; showing it")
    else:
        summary = _plan(project, store, campaign_id=campaign_id, as_of=as_of, view=view,
                        budget=0.25 * population if budget is None else budget)
    view.plan_summary(summary)
    export_plan(store, campaign_id=campaign_id, path=out)


def _measure(store: Store, campaign_id: str, *, outcome_type: str, window_days: int,
             view: DemoView) -> None:
    from churnguard.intervene.measure import MeasurementError, measure_campaign, save_measurement

    try:
        measured = measure_campaign(store, campaign_id=campaign_id, outcome_type=outcome_type,
                                    window_days=window_days)
    except MeasurementError as exc:
        view.note(f"could not measure {campaign_id}: {exc}")
        return
    save_measurement(store, measured)
    pooled = next((g for g in measured.groups if g.action == "all" and g.tier == "all"), None)
    if pooled is not None and pooled.incremental_retention is not None:
        low, high = pooled.incremental_retention_ci or (float("nan"), float("nan"))
        view.note(f"campaign {campaign_id}: incremental retention "
                  f"{pooled.incremental_retention:+.1%} (95% CI {low:+.1%} to {high:+.1%}) "
                  f"over {pooled.n_treated:,} treated customers")


def _plan(project: Project, store: Store, *, campaign_id: str, as_of: dt.datetime,
          budget: float, view: DemoView) -> dict[str, Any]:
    from churnguard.intervene.plan import make_plan, save_plan

    with view.stages("Planning") as update:
        plan = make_plan(store, config=project.config, budget=budget, as_of=as_of,
                         campaign_id=campaign_id, progress=update)
    save_plan(store, plan, config=project.config)
    return plan.summary


def _point_at_truth(project: Project, truth: Path) -> None:
    """Record in churnguard.toml where the simulator's truth is, so backtests add the oracle."""
    config_path = project.root / CONFIG_FILENAME
    text = config_path.read_text(encoding="utf-8")
    if "[simulation]" not in text:
        relative = os.path.relpath(truth, project.root)
        config_path.write_text(text.rstrip() + f'\n\n[simulation]\ntruth = "{relative}"\n',
                               encoding="utf-8")
