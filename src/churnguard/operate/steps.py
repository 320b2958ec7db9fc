"""The steps of a cycle, in order: ingest, score, monitor, challenge, plan, deliver, measure.

Each step is two functions of the :class:`~churnguard.operate.cycle.CycleContext`: its inputs
(read only; their hash is the step's fingerprint) and its run (returns a
:class:`~churnguard.operate.cycle.StepOutcome`). Each is safe to run again after a crash at any
point (module docstring of operate/cycle.py):

* ingest: every new inbox file in its own transaction with its ``inbox_files`` row
  (operate/inbox.py);
* score: the champion's scores at the data's now, stored as ``churnguard score`` stores them
  (a rerun replaces the same (as_of, version) set);
* monitor: :func:`churnguard.monitor.run_monitor` (drift of every feature and of the scores
  with thresholds calibrated to the batch size, the label-free estimate, realized metrics on
  matured cohorts and the label alarm on the newest), read only; a drift or label alarm makes
  a challenger due;
* challenge: a project without a model trains its first one (``[operate] first_model``), which
  becomes champion as there is nothing to compare it with. With a champion, the gate first
  checks a champion it promoted on its realized metrics (:func:`churnguard.champions.
  check_realized`, which may roll it back); then, when a challenger is due (by
  ``retrain_every_days`` or a monitor alarm), :func:`churnguard.champions.challenge` trains,
  shadow-scores and promotes it only on evidence (docs/operate.md, "The gate");
* plan: when the newest plan is ``plan_every_days`` old, the plan ``churnguard plan`` makes
  with ``plan_budget``, stored under the campaign id ``cycle-<cycle id>``: a rerun finds it;
* deliver: this cycle's plan (and any cycle plan whose delivery started and did not finish)
  through :func:`churnguard.intervene.deliver.deliver_plan`, whose log sends each customer once;
* measure: every campaign whose window has passed and that was never measured.

>>> from churnguard.operate.cycle import STEPS
>>> list(STEPS)
['ingest', 'score', 'monitor', 'challenge', 'plan', 'deliver', 'measure']
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from churnguard.campaigns import measurable_campaigns_sql, observed_until
from churnguard.config import ChurnDefinition
from churnguard.cutoffs import resolve_as_of, to_cutoff
from churnguard.errors import ChurnguardError
from churnguard.monitor import MonitorError, events_mark, run_monitor, scores_mark
from churnguard.operate import inbox
from churnguard.operate.cycle import (
    CycleContext,
    CycleError,
    Step,
    StepOutcome,
    fault,
    register_step,
)
from churnguard.registry import (
    CHAMPION,
    alias_version,
    champion_definition,
    get_model_version,
    trained_definition,
)
from churnguard.store import Store

CAMPAIGN_PREFIX = "cycle-"  # campaign id of a cycle's plan: cycle-<cycle id>


def _mark(store: Store) -> dict[str, Any]:
    n, newest = events_mark(store)
    return {"events": n, "newest_event": newest}


def _data_now(ctx: CycleContext, store: Store) -> dt.datetime | None:
    """The time the cycle acts at: --now, else the midnight after the newest event (None when
    the store holds no events)."""
    if ctx.now is not None:
        return to_cutoff(ctx.now)
    if events_mark(store)[0] == 0:
        return None
    return resolve_as_of(store, None)


def _train_as_of(ctx: CycleContext, store: Store) -> dt.datetime | None:
    """The ``as_of`` the training steps (the first model, the gate) get: --now, except None
    (all the data) when --now is at or after the data's own now.

    A model trained as of the moment the data ends learns from every label there is, which is
    what ``as_of=None`` trains on. Handed that moment itself, the cutoff calendar would validate
    on ``now - horizon``, whose label window ends at midnight while the last event comes before
    it: the labels are not observable and training fails (a replay driving the cycle with --now
    at each week's end found this)."""
    if ctx.now is None or events_mark(store)[0] == 0:
        return ctx.now
    return None if to_cutoff(ctx.now) >= resolve_as_of(store, None) else ctx.now


def _inbox_folder(ctx: CycleContext) -> Path:
    return inbox.folder_of(ctx.project.root, ctx.config.operate.inbox)


# -- ingest ---------------------------------------------------------------------------------------
def ingest_inputs(ctx: CycleContext) -> dict[str, Any]:
    # Names and sizes only: the step looks every time (skip_unchanged=False) and hashes the
    # files itself, so hashing them here too would read every file twice.
    folder = _inbox_folder(ctx)
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    return {"inbox": str(folder),
            "files": sorted((p.relative_to(folder).as_posix(), p.stat().st_size) for p in files
                            if p.relative_to(folder).parts[0] not in (inbox.DONE_FOLDER,
                                                                      inbox.REJECTED_FOLDER))}


def _file_away_known(folder: Path, f: inbox.InboxFile, seen: inbox.Known) -> dict[str, Any]:
    """A file whose bytes were seen before: filed with the others, nothing loaded."""
    if seen.status == inbox.INGESTED:
        inbox.file_away(folder, f, inbox.DONE_FOLDER)
        return {"file": f.name, "same_as": seen.name, "cycle_id": seen.cycle_id}
    note = (f"the same bytes were refused before (as {seen.name}, cycle {seen.cycle_id}): "
            f"{seen.error}")
    inbox.file_away(folder, f, inbox.REJECTED_FOLDER, note=note)
    return {"file": f.name, "same_as": seen.name, "cycle_id": seen.cycle_id, "refused": True}


def ingest_run(ctx: CycleContext) -> StepOutcome:
    folder = _inbox_folder(ctx)
    files = inbox.scan(folder)
    ingested: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    for f in files:
        # Looked up per file: the same bytes twice in one inbox are one load and a duplicate.
        with ctx.access.reading() as store:
            seen = inbox.known(store, [f.content_hash]).get(f.content_hash)
        if seen is not None:
            duplicates.append(_file_away_known(folder, f, seen))
            continue
        ctx.say(f"ingest: {f.name} ({f.kind or 'kind unknown'}, {f.size:,} bytes)")
        with ctx.access.writing() as store:
            result = inbox.ingest_one(
                store, f, cycle_id=ctx.cycle_id, config=ctx.config.ingest,
                on_error=ctx.config.operate.on_error,
                in_transaction=lambda: fault("cycle:ingest:before-commit"))
        if result.status == inbox.INGESTED:
            inbox.file_away(folder, f, inbox.DONE_FOLDER)
            ingested.append(result.figures())
        else:
            inbox.file_away(folder, f, inbox.REJECTED_FOLDER, note=result.error)
            rejected.append(result.figures())
    figures = {"inbox": str(folder), "ingested": ingested, "rejected": rejected,
               "duplicates": duplicates,
               "rows_added": sum(i.get("rows_added", 0) for i in ingested),
               "rows_updated": sum(i.get("rows_updated", 0) for i in ingested)}
    if not ingested and not rejected:
        seen = f"; {len(duplicates)} seen before, filed under done/" if duplicates else ""
        return StepOutcome.skipped(f"no new file in {folder}{seen}", figures=figures)
    decision = (f"ingested {len(ingested)} file(s), {figures['rows_added']:,} rows added and "
                f"{figures['rows_updated']:,} updated; refused {len(rejected)}; "
                f"{len(duplicates)} already seen")
    evidence = "; ".join(f"{r['file']}: {r['error']}" for r in rejected)
    return StepOutcome.done(decision, evidence=evidence or "files known by sha256 of their bytes",
                            figures=figures,
                            changed=bool(figures["rows_added"] or figures["rows_updated"]))


# -- score ----------------------------------------------------------------------------------------
def score_inputs(ctx: CycleContext) -> dict[str, Any]:
    with ctx.access.reading() as store:
        return {**_mark(store), "as_of": _data_now(ctx, store),
                "champion": alias_version(store, CHAMPION),
                "definition": champion_definition(store, ctx.config.churn).model_dump(),
                "scoring": ctx.config.scoring.model_dump()}


def score_run(ctx: CycleContext) -> StepOutcome:
    from churnguard.scoring import score_customers  # noqa: PLC0415 (the models: heavy imports)

    with ctx.access.reading() as store:
        version, now = alias_version(store, CHAMPION), _data_now(ctx, store)
    if now is None:
        return StepOutcome.skipped("the store holds no events yet; nothing to score")
    if version is None:
        return StepOutcome.skipped("no champion model yet; the challenge step trains the first")
    with ctx.access.writing() as store:
        definition = champion_definition(store, ctx.config.churn)
        result = score_customers(store, definition=definition, tiers=ctx.config.scoring,
                                 as_of=now, progress=lambda m: ctx.say(f"score: {m}"))
    tiers = result.scores["risk_tier"].value_counts()
    figures = {"as_of": result.as_of, "model_version": result.model_version,
               "scored": len(result.scores), "left_out": len(result.left_out),
               "mean_p_churn": round(float(result.scores["p_churn"].mean()), 4),
               **{f"tier_{t}": int(tiers.get(t, 0)) for t in ("high", "medium", "low")}}
    return StepOutcome.done(
        f"scored {figures['scored']:,} customers as of {result.as_of:%Y-%m-%d} with "
        f"{result.model_version}: {figures['tier_high']:,} high, {figures['tier_medium']:,} "
        f"medium, {figures['tier_low']:,} low risk",
        evidence=f"the champion's churn definition: no {'/'.join(definition.activity)} within "
                 f"{definition.horizon_days} days", figures=figures)


# -- monitor --------------------------------------------------------------------------------------
def monitor_inputs(ctx: CycleContext) -> dict[str, Any]:
    with ctx.access.reading() as store:
        return {**_mark(store), "now": _data_now(ctx, store),
                "champion": alias_version(store, CHAMPION), "scores": scores_mark(store),
                "monitor": ctx.config.monitor.model_dump(mode="json")}


def monitor_run(ctx: CycleContext) -> StepOutcome:
    with ctx.access.reading() as store:
        if alias_version(store, CHAMPION) is None:
            return StepOutcome.skipped("no champion model yet; nothing to monitor")
        try:
            report = run_monitor(store, as_of=ctx.now, config=ctx.config.monitor,
                                 definition=ctx.config.churn,
                                 progress=lambda m: ctx.say(f"monitor: {m}"))
        except MonitorError as exc:
            return StepOutcome.skipped(f"nothing to monitor: {exc}")
    figures = report.to_dict()  # "alarm": a drift alarm or a label alarm
    score = report.score_drift
    score_text = ("no score drift test" if score is None else
                  f"score {report.statistic} {score.statistic:.3f} (q {score.q_value:.3g})")
    label = report.label
    label_text = ("no matured cohort to test outcomes on yet" if label is None
                  else label.reason)
    return StepOutcome.done(
        f"{'drift alarm' if report.drifted else 'no drift alarm'}: {len(report.alarms)} of "
        f"{len(report.features) + (score is not None)} checks alarm; {score_text}; "
        f"{label_text}",
        evidence=f"batch of {report.batch_size:,} customers at {report.as_of:%Y-%m-%d} against "
                 f"{report.reference.description}; bootstrap "
                 f"null at the batch size, Benjamini–Hochberg at FDR {report.fdr:g}; label "
                 f"alarm at a false-alarm rate of {ctx.config.monitor.label_alpha:g} per pass "
                 "(docs/monitor.md)", figures=figures)


# -- challenge ------------------------------------------------------------------------------------
def _champion_age_days(store: Store, version: str, now: dt.datetime,
                       configured: ChurnDefinition) -> float:
    """Days from the newest data the champion learnt from (its validation cutoff plus the
    horizon: the end of its labels) to ``now``; from its registration when that is unknown."""
    found = get_model_version(store, version)
    cutoff = found.data_window.get("validation_cutoff")
    horizon = (trained_definition(found) or configured).horizon_days
    seen = to_cutoff(cutoff) + dt.timedelta(days=horizon) if cutoff else found.created_at
    return (now - seen).total_seconds() / 86400


def challenge_inputs(ctx: CycleContext) -> dict[str, Any]:
    monitor = ctx.records.get("monitor")
    with ctx.access.reading() as store:
        return {**_mark(store), "now": _data_now(ctx, store),
                "champion": alias_version(store, CHAMPION),
                "alarm": bool(monitor and monitor.figures.get("alarm")),
                "operate": ctx.config.operate.model_dump(include={"retrain_every_days",
                                                                 "first_model"})}


def challenge_run(ctx: CycleContext) -> StepOutcome:
    from churnguard.training import train_model  # noqa: PLC0415 (the models: heavy imports)

    op = ctx.config.operate
    with ctx.access.reading() as store:
        version, now = alias_version(store, CHAMPION), _data_now(ctx, store)
        as_of = _train_as_of(ctx, store)
    if now is None:
        return StepOutcome.skipped("the store holds no events yet; nothing to train on")
    if version is None:
        with ctx.access.writing() as store:
            trained = train_model(store, definition=ctx.config.churn, model=op.first_model,
                                  as_of=as_of, promote=None,
                                  progress=lambda m: ctx.say(f"challenge: {m}"))
        figures = {"trained": trained.version, "model": trained.name,
                   "promoted": trained.promoted, "n_train": trained.n_train,
                   "validation": trained.validation_metrics}
        return StepOutcome.done(
            f"trained the first model, {trained.version} ({trained.name}), and made it champion",
            evidence="the project had no champion, so there was nothing to compare it with; "
                     "its validation figures are in-sample for calibration (the backtest's are "
                     "the honest ones)", figures=figures, changed=True)
    from churnguard.champions import challenge, check_realized  # noqa: PLC0415 (heavy imports)

    gate, say = ctx.config.gate, (lambda m: ctx.say(f"challenge: {m}"))
    with ctx.access.writing() as store:
        # Every cycle: a champion the gate promoted is checked on its realized metrics first.
        realized = check_realized(store, definition=ctx.config.churn, config=gate,
                                  as_of=as_of, progress=say)
        version = alias_version(store, CHAMPION)
        age = _champion_age_days(store, version, now, ctx.config.churn)
    monitor = ctx.records.get("monitor")
    alarm = bool(monitor and monitor.figures.get("alarm"))
    label = bool(monitor and monitor.figures.get("label_alarm"))
    due = alarm or age >= op.retrain_every_days
    why = ("the monitor raised a label alarm (the champion's realized churn rate or ROC-AUC "
           "moved away from its probabilities)" if label else
           "the monitor raised a drift alarm" if alarm else
           f"the champion's data ends {age:.0f} day(s) ago (retrain_every_days = {op.retrain_every_days})")
    figures: dict[str, Any] = {"champion": version, "age_days": round(age, 1), "alarm": alarm,
                               "label_alarm": label, "due": due,
                               "realized": realized.to_dict() if realized is not None else None}
    rolled_back = realized is not None and realized.moves_champion
    if rolled_back:
        said = f"{realized.outcome} to {realized.champion_after}: {realized.reason}"
        return StepOutcome.done(said, evidence="realized metrics on a matured cohort",
                                figures=figures, changed=True)
    if not due:
        return StepOutcome.skipped(f"no challenger due: {why}", figures=figures)
    with ctx.access.writing() as store:
        decision = challenge(store, definition=ctx.config.churn, as_of=as_of, config=gate,
                             progress=say)
    figures["decision"] = decision.to_dict()
    return StepOutcome.done(f"{decision.outcome}: {decision.reason}",
                            evidence=f"a challenger was due: {why}", figures=figures,
                            changed=decision.moves_champion)


# -- plan -----------------------------------------------------------------------------------------
def _newest_plan(store: Store) -> tuple[str, dt.datetime] | None:
    rows = store.con.execute("SELECT campaign_id, as_of FROM plans "
                             "ORDER BY as_of DESC, created_at DESC LIMIT 1").fetchall()
    return (rows[0][0], rows[0][1]) if rows else None


def plan_inputs_of(ctx: CycleContext) -> dict[str, Any]:
    with ctx.access.reading() as store:
        return {**_mark(store), "now": _data_now(ctx, store),
                "champion": alias_version(store, CHAMPION), "newest_plan": _newest_plan(store),
                "operate": ctx.config.operate.model_dump(include={"plan_budget",
                                                                 "plan_every_days"}),
                "intervene": ctx.config.intervene.model_dump(mode="json")}


def _campaign_id(ctx: CycleContext) -> str:
    return f"{CAMPAIGN_PREFIX}{ctx.cycle_id}"


def plan_run(ctx: CycleContext) -> StepOutcome:
    from churnguard.campaigns import stored_plan  # noqa: PLC0415
    from churnguard.intervene.plan import make_plan, save_plan  # noqa: PLC0415

    op, campaign_id = ctx.config.operate, _campaign_id(ctx)
    with ctx.access.reading() as store:
        mine = stored_plan(store, campaign_id)
        version, now, newest = alias_version(store, CHAMPION), _data_now(ctx, store), \
            _newest_plan(store)
    if mine is not None:  # stored before a crash took the step's record with it
        return StepOutcome.done(f"planned campaign {campaign_id} (stored by this cycle before "
                                "it was interrupted)", figures=_plan_figures(mine.summary,
                                                                           campaign_id))
    if op.plan_budget is None:
        return StepOutcome.skipped("no plan: [operate] plan_budget is not set")
    if version is None or now is None:
        return StepOutcome.skipped("no plan: no champion model to score customers with yet")
    if newest is not None and newest[1] + dt.timedelta(days=op.plan_every_days) > now:
        due = newest[1] + dt.timedelta(days=op.plan_every_days)
        return StepOutcome.skipped(
            f"no plan due: the newest, {newest[0]}, is as of {newest[1]:%Y-%m-%d}; the next is "
            f"due on {due:%Y-%m-%d} (plan_every_days = {op.plan_every_days})",
            figures={"newest_plan": newest[0], "due": due})
    with ctx.access.writing() as store:
        result = make_plan(store, config=ctx.config, budget=op.plan_budget, as_of=ctx.now,
                           campaign_id=campaign_id, progress=lambda m: ctx.say(f"plan: {m}"))
        save_plan(store, result, config=ctx.config)
    figures = _plan_figures(result.summary, campaign_id)
    return StepOutcome.done(
        f"planned campaign {campaign_id}: {figures['treated']:,} customers to contact, "
        f"{figures['control']:,} held out; expected cost {figures['expected_cost']:,.2f} of "
        f"{op.plan_budget:,.2f}",
        evidence=("first plan" if newest is None else
                  f"the newest plan, {newest[0]}, is as of {newest[1]:%Y-%m-%d}, "
                  f"{op.plan_every_days}+ days before {now:%Y-%m-%d}"), figures=figures)


def _plan_figures(summary: dict, campaign_id: str) -> dict[str, Any]:
    return {"campaign_id": campaign_id, "as_of": summary.get("as_of"),
            "treated": int(summary.get("treated", 0)), "control": int(summary.get("control", 0)),
            "expected_cost": float(summary.get("expected_cost", 0.0)),
            "expected_saves": float(summary.get("expected_saves", 0.0))}


# -- deliver --------------------------------------------------------------------------------------
def _to_deliver(ctx: CycleContext, store: Store) -> list[str]:
    """This cycle's plan, and cycle plans whose delivery started and did not finish."""
    plan = ctx.records.get("plan")
    mine = plan.figures.get("campaign_id") if plan is not None and plan.status == "done" else None
    rows = store.con.execute(
        "SELECT DISTINCT d.campaign_id FROM deliveries d JOIN plans p USING (campaign_id) "
        "WHERE starts_with(d.campaign_id, ?) AND d.status <> 'sent' ORDER BY 1",
        [CAMPAIGN_PREFIX]).fetchall()
    ids = [r[0] for r in rows]
    return ids + [mine] if mine and mine not in ids else ids


def deliver_inputs(ctx: CycleContext) -> dict[str, Any]:
    with ctx.access.reading() as store:
        ids = _to_deliver(ctx, store)
        status = store.con.execute(
            "SELECT campaign_id, status, count(*) FROM deliveries WHERE campaign_id IN "
            "(SELECT unnest(?::VARCHAR[])) GROUP BY ALL ORDER BY ALL", [ids]).fetchall()
    return {"campaigns": ids, "deliveries": status,
            "operate": ctx.config.operate.model_dump(include={"deliver", "deliver_webhook",
                                                             "deliver_out"})}


def deliver_run(ctx: CycleContext) -> StepOutcome:
    from churnguard.intervene.deliver import deliver_plan  # noqa: PLC0415

    op = ctx.config.operate
    with ctx.access.reading() as store:
        ids = _to_deliver(ctx, store)
    if not ids:
        return StepOutcome.skipped("nothing to deliver: this cycle planned no campaign")
    if not op.deliver:
        return StepOutcome.skipped(
            f"delivery is off ([operate] deliver = false): send with `churnguard deliver "
            f"{ids[-1]}`", figures={"waiting": ids})
    reports = []
    for campaign_id in ids:
        out = None if op.deliver_webhook else ctx.project.root / op.deliver_out / \
            f"{campaign_id}.jsonl"
        with ctx.access.writing() as store:
            reports.append(deliver_plan(store, campaign_id=campaign_id,
                                        webhook=op.deliver_webhook, out=out))
    figures = {"campaigns": [{"campaign_id": r.campaign_id, "sent": r.sent,
                              "already_sent": r.already_sent, "failed": r.failed,
                              "target": r.target} for r in reports]}
    failed = [r for r in reports if r.failed]
    if failed:
        raise CycleError(
            "; ".join(f"campaign {r.campaign_id}: {r.failed:,} deliveries failed "
                      f"({'; '.join(r.errors[:2])})" for r in failed)
            + "; run the cycle again to retry them (nothing already sent is sent again)",
            bad_input=False)
    sent = sum(r.sent for r in reports)
    return StepOutcome.done(
        f"delivered {sent:,} messages of {len(reports)} campaign(s) "
        f"({sum(r.already_sent for r in reports):,} sent before)",
        evidence="the delivery log sends each contacted customer once; control customers "
                 "are never sent", figures=figures)


# -- measure --------------------------------------------------------------------------------------
def _measurable(ctx: CycleContext, store: Store) -> list[str]:
    iv = ctx.config.intervene
    # The same clock as `churnguard measure --as-of`: --now, capped at the data's end.
    until = observed_until(store, ctx.now)
    if until is None:
        return []
    return [r[0] for r in store.con.execute(
        f"WITH usable AS ({measurable_campaigns_sql(iv.window_days)}) "
        "SELECT campaign_id FROM usable WHERE campaign_id NOT IN "
        "(SELECT campaign_id FROM measurements) ORDER BY campaign_id", [until]).fetchall()]


def measure_inputs(ctx: CycleContext) -> dict[str, Any]:
    with ctx.access.reading() as store:
        return {**_mark(store), "campaigns": _measurable(ctx, store),
                "intervene": ctx.config.intervene.model_dump(include={"window_days",
                                                                     "outcome_type"})}


def measure_run(ctx: CycleContext) -> StepOutcome:
    from churnguard.intervene.measure import measure_campaign, save_measurement  # noqa: PLC0415

    iv = ctx.config.intervene
    with ctx.access.reading() as store:
        ids = _measurable(ctx, store)
    if not ids:
        return StepOutcome.skipped("no campaign's window has passed since it was measured")
    measured, refused = [], []
    for campaign_id in ids:
        try:
            with ctx.access.writing() as store:
                m = measure_campaign(store, campaign_id=campaign_id,
                                     outcome_type=iv.outcome_type, window_days=iv.window_days,
                                     as_of=ctx.now)
                save_measurement(store, m)
        except ChurnguardError as exc:
            if not exc.bad_input:
                raise
            # Said in the record every cycle until the campaign can be measured.
            refused.append({"campaign_id": campaign_id, "error": str(exc)})
            continue
        measured.append({"campaign_id": campaign_id, "n_treated": m.n_treated,
                         "n_control": m.n_control,
                         "incremental_retained": m.total_incremental_retained,
                         "incremental_net_revenue": m.total_incremental_net_revenue})
    figures = {"measured": measured, "not_measurable": refused}
    decision = (f"measured {len(measured)} campaign(s) against their control groups"
                + (f"; {len(refused)} cannot be measured (see the figures)" if refused else ""))
    return StepOutcome.done(decision, evidence=f"{iv.outcome_type} within {iv.window_days} days "
                            "of assignment, treatment against control (intention to treat)",
                            figures=figures)


# The registry, in cycle order. To add a step: write its inputs and run functions above and
# register it here at its place (register_step(..., after="monitor")); to replace one (the
# monitor and the gate), register the new one with replace_existing=True.
for _step in (
    Step(name="ingest", run=ingest_run, inputs=ingest_inputs, skip_unchanged=False,
         help="new files in the inbox, once each by content"),
    Step(name="score", run=score_run, inputs=score_inputs,
         help="the champion's scores at the data's now"),
    Step(name="monitor", run=monitor_run, inputs=monitor_inputs,
         help="feature and score drift; the label alarm on the newest matured cohort"),
    Step(name="challenge", run=challenge_run, inputs=challenge_inputs,
         help="the first model; whether a challenger is due"),
    Step(name="plan", run=plan_run, inputs=plan_inputs_of,
         help="the next campaign when one is due"),
    Step(name="deliver", run=deliver_run, inputs=deliver_inputs,
         help="the cycle's plan, each customer once"),
    Step(name="measure", run=measure_run, inputs=measure_inputs,
         help="campaigns whose window has passed"),
):
    register_step(_step, replace_existing=True)

__all__ = ["CAMPAIGN_PREFIX"]
