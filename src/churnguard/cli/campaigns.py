"""The intervention commands: ``uplift evaluate|score``, ``plan``, ``deliver`` and ``measure``.

Registered on the ``churnguard`` group when the package loads; thin shells over ``churnguard.intervene``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
import pandas as pd
from rich.table import Table

from churnguard.cli.base import (
    BadInput,
    cli,
    console,
    date_callback,
    day_progress,
    days_option,
    load_project,
    project_option,
    stage_spinner,
    write_table,
)
from churnguard.cli.models import champions_definition
from churnguard.intervene.learners import LEARNERS


def _outcome(project, outcome_type: str | None, window: int | None) -> tuple[str, int]:
    iv = project.config.intervene
    return outcome_type or iv.outcome_type, window or iv.window_days


def outcome_options(command):
    command = days_option("--window", default=None,
                          help="Outcome window, e.g. 90d, or 14d for an e-mail campaign "
                               "(default: intervene.window_days).")(command)
    return click.option("--outcome-type", default=None,
                        help="Event type the actions aim at, e.g. order or visit "
                             "(default: intervene.outcome_type).")(command)


@cli.group()
def uplift() -> None:
    """Learn and apply the effect of each action from past randomised campaigns."""


@uplift.command(name="evaluate")
@outcome_options
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-fitting folds (by customer).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the evaluation as JSON to FILE.")
@project_option
def uplift_evaluate(outcome_type: str | None, window: int | None, folds: int,
                    json_path: Path | None, project_dir: Path | None) -> None:
    """Compare the uplift learners out of fold on the store's randomised campaigns.

    For each action the campaign rows of that action and the control group are ranked by the
    cross-fitted effect; the Qini coefficient, AUUC and uplift in the top 10/20/30% say how well
    each learner (regularised logistic S- and T-learners and a DR-learner; S-, T- and X-learners
    on gradient-boosted trees; and a random ranking) finds the customers the action works on.
    The chosen learner, the one `plan` uses, is the simplest whose Qini the best learner's does
    not beat beyond noise (a paired bootstrap over customers; [uplift] in churnguard.toml).
    Campaigns are pooled: campaign and date are features, older campaigns count less.
    """
    from churnguard.intervene.uplift import evaluate_learners, uncatalogued_note, uplift_dataset

    project = load_project(project_dir)
    outcome_type, window = _outcome(project, outcome_type, window)
    catalogue = [a.name for a in project.config.intervene.actions]
    with project.open_store(read_only=True) as store, stage_spinner("Evaluating uplift") as say:
        data = uplift_dataset(store, outcome_type=outcome_type, window_days=window,
                              definition=project.config.churn)
        up = project.config.uplift
        result = evaluate_learners(data, folds=folds, half_life_days=up.half_life_days,
                                   confidence=up.choice_confidence,
                                   replicates=up.bootstrap_replicates,
                                   shrinkage=up.shrinkage, progress=say)
    table = Table(title=f"Uplift learners, out of fold ({result.n_rows:,} rows of "
                        f"{result.n_campaigns} campaigns; outcome: {outcome_type} within "
                        f"{window} days)")
    for column in ("learner", "Qini", "AUUC", "uplift@10%", "uplift@20%", "uplift@30%"):
        table.add_column(column, justify="left" if column == "learner" else "right")
    for row in result.learners:
        mark = " (chosen)" if row["name"] == result.chosen else ""
        table.add_row(row["name"] + mark, f"{row['qini']:.4f}", f"{row['auuc']:.4f}",
                      f"{row['uplift_at_10']:+.3f}", f"{row['uplift_at_20']:+.3f}",
                      f"{row['uplift_at_30']:+.3f}")
    console.print(table)
    note = uncatalogued_note(data.actions, catalogue)
    if note:
        console.print(f"Note: actions {note}", markup=False, soft_wrap=True)
    if json_path is not None:
        json_path.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    if result.choice and result.choice["best"] != result.chosen:
        console.print(f"Note: {result.chosen} is within noise of the best, "
                      f"{result.choice['best']}, and simpler", markup=False, soft_wrap=True)
    click.echo(f"Chosen learner: {result.chosen}"
               + (f"; written to {json_path}" if json_path else ""))


@uplift.command(name="score")
@click.option("--users", "users_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A CSV or Parquet file with a user_id column: score only these "
                                 "customers (default: every customer in the users table).")
@outcome_options
@click.option("--learner", type=click.Choice(["auto", *LEARNERS]), default="auto",
              show_default=True,
              help="auto: the simplest learner the best out-of-fold Qini does not beat beyond "
                   "noise; or one of the learners, simplest first (docs/intervene.md).")
@click.option("--as-of", default=None, callback=date_callback,
              help="Features as of this date (default: just after the last event).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Write FILE.csv or FILE.parquet.")
@project_option
def uplift_score(users_path: Path | None, outcome_type: str | None, window: int | None,
                 learner: str, as_of: dt.date | None, out_path: Path,
                 project_dir: Path | None) -> None:
    """Estimate, per customer and action, the change in the probability of the outcome event
    within the window if the customer gets that action instead of nothing.

    Writes user_id and one column per action of the catalogue (e.g. 0.03 = three points more
    likely to order), then one per action that the campaigns gave but the catalogue lacks
    (learning an effect needs no cost; a note names them). With --as-of, a campaign counts once
    its window has ended by that date (and by the end of the ingested data).
    """
    from churnguard.intervene.uplift import score_uplift
    from churnguard.cutoffs import resolve_as_of

    if out_path.suffix.lower() not in (".csv", ".parquet"):
        raise BadInput(f"--out {out_path}: write .csv or .parquet")
    user_ids = None
    if users_path is not None:
        frame = (pd.read_parquet(users_path) if users_path.suffix.lower() == ".parquet"
                 else pd.read_csv(users_path, dtype=str))
        if "user_id" not in frame.columns:
            raise BadInput(f"{users_path}: no user_id column (columns: "
                           f"{', '.join(map(str, frame.columns))})")
        user_ids = frame["user_id"].dropna().astype(str).drop_duplicates().tolist()
        if not user_ids:
            raise BadInput(f"{users_path}: the user_id column is empty")
    project = load_project(project_dir)
    outcome_type, window = _outcome(project, outcome_type, window)
    actions = [a.name for a in project.config.intervene.actions]
    with project.open_store(read_only=True) as store, stage_spinner("Scoring uplift") as say:
        when = resolve_as_of(store, as_of)
        result = score_uplift(store, actions=actions, definition=project.config.churn,
                              as_of=when, user_ids=user_ids, outcome_type=outcome_type,
                              window_days=window, learner=learner,
                              half_life_days=project.config.uplift.half_life_days,
                              shrinkage=project.config.uplift.shrinkage, progress=say)
    frame = result.effects
    write_table(frame, out_path)
    for note in result.notes:
        console.print(f"Note: actions {note}", markup=False, soft_wrap=True)
    click.echo(f"Scored {len(frame):,} customers × {frame.shape[1] - 1} actions with the "
               f"{result.learner} (outcome: {outcome_type} within {window} days); written to "
               f"{out_path}")


@cli.command()
@click.option("--budget", type=click.FloatRange(min=0), required=True,
              help="Most the campaign may spend (expected cost of the contacted customers).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the plan to FILE.csv, .parquet, .json or .jsonl.")
@click.option("--as-of", default=None, callback=date_callback,
              help="Plan as of this date (default: just after the last event).")
@click.option("--campaign-id", default=None, help="Id of the campaign (default: generated).")
@project_option
def plan(budget: float, out_path: Path | None, as_of: dt.date | None, campaign_id: str | None,
         project_dir: Path | None) -> None:
    """Choose one action per customer (or none) to keep the most value within the budget.

    Scores every customer, estimates each action's effect (uplift), each customer's value and
    each action's expected cost, allocates the budget under the actions' capacities, holds out
    a random control group (intervene.control_share, stratified by risk tier and action), gives
    intervene.explore_share of the contacts an action drawn at random where the effects are
    least known (with a control group of their own; docs/intervene.md), and writes recommended
    items and a message in English and Chinese for each contacted customer.
    A customer whose data cannot be featurised is left out and named in a note; campaign
    actions missing from the catalogue ([intervene] actions: their cost) are not allocated.
    The plan is stored as a campaign: `churnguard deliver CAMPAIGN` sends it and
    `churnguard measure CAMPAIGN` measures it once the window has passed.
    """
    from churnguard.intervene.deliver import EXPORT_SUFFIXES, export_plan
    from churnguard.intervene.plan import make_plan, save_plan

    if out_path is not None and out_path.suffix.lower() not in EXPORT_SUFFIXES:
        raise BadInput(f"--out {out_path}: write one of {', '.join(EXPORT_SUFFIXES)}")
    project = load_project(project_dir)
    with project.open_store() as store, stage_spinner("Planning") as say:
        champions_definition(store, project)  # the plan follows it; say so when it differs
        result = make_plan(store, config=project.config, budget=budget, as_of=as_of,
                           campaign_id=campaign_id, progress=say)
        save_plan(store, result, config=project.config)
        if out_path is not None:
            export_plan(store, campaign_id=result.campaign_id, path=out_path)
    print_plan_summary(result.summary)
    click.echo(f"Planned campaign {result.campaign_id}: {result.summary['treated']:,} customers "
               f"to contact, {result.summary['control']:,} held out as control; expected cost "
               f"{result.summary['expected_cost']:,.2f} of {budget:,.2f}"
               + (f"; written to {out_path}" if out_path else ""))


def print_plan_summary(summary: dict) -> None:
    table = Table(title=f"Plan as of {summary['as_of'][:10]} (population "
                        f"{summary['population']:,})")
    for column in ("action", "customers", "control", "expected saves", "expected cost",
                   "expected margin"):
        table.add_column(column, justify="left" if column == "action" else "right")
    for action, row in summary["per_action"].items():
        table.add_row(action, f"{row['customers']:,}", f"{row['control']:,}",
                      f"{row['expected_saves']:.1f}", f"{row['expected_cost']:,.2f}",
                      f"{row['expected_margin']:,.2f}")
    table.add_row("total", f"{summary['treated']:,}", f"{summary['control']:,}",
                  f"{summary['expected_saves']:.1f}", f"{summary['expected_cost']:,.2f}",
                  f"{summary['expected_incremental_margin']:,.2f}")
    console.print(table)
    console.print(f"Uplift: {summary['uplift_source']}", markup=False)
    explored = summary.get("exploration")
    if explored:
        console.print(f"Exploration: {explored['contacted']:,} of the contacted customers "
                      f"({explored['contacted_share']:.1%}) got an action drawn where the effects "
                      "are least known; expected margin given up against the greedy plan: "
                      f"{explored['expected_margin_given_up']:,.2f} (docs/intervene.md)",
                      markup=False, soft_wrap=True)
    # Plans stored before the notes existed have none.
    for note in summary.get("notes", []):
        console.print(f"Note: {note}", markup=False, soft_wrap=True)
    value = summary["value_model"]
    console.print(f"Value: the {value['chosen']} model (chosen by backtest on "
                  f"{value['test_cutoff']}; MAE "
                  + ", ".join(f"{k} {v['mae']:.2f}" for k, v in value["models"].items()) + ")",
                  markup=False)


@cli.command()
@click.argument("campaign_id")
@click.option("--webhook", default=None, help="POST the deliveries to this http(s) URL.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append the deliveries to this JSON Lines file instead.")
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--max-attempts", type=click.IntRange(min=1), default=6, show_default=True,
              help="Tries per batch before it is marked failed (a rerun tries again).")
@project_option
def deliver(campaign_id: str, webhook: str | None, out_path: Path | None, batch_size: int,
            max_attempts: int, project_dir: Path | None) -> None:
    """Send a planned campaign to a webhook (or a file), each contacted customer exactly once.

    Control customers are never sent. Every delivery carries an idempotency key; the delivery log
    in the store records what was sent, so a rerun after a failure or a crash resumes where it
    stopped and never sends a customer twice (the receiver must dedupe on the key; docs/deliver.md).

    With CHURNGUARD_WEBHOOK_SECRET set, every request is signed (X-Churnguard-Timestamp and
    X-Churnguard-Signature: HMAC-SHA256 of "timestamp." + body); CHURNGUARD_WEBHOOK_HOSTS limits
    the hosts a webhook may go to.
    """
    import os

    from churnguard.intervene.deliver import SECRET_ENV, deliver_plan

    project = load_project(project_dir)
    if webhook is not None and not os.environ.get(SECRET_ENV):
        console.print(f"Warning: {SECRET_ENV} is not set, so the requests are not signed and the "
                      "receiver cannot tell them from forged ones (docs/deliver.md)", markup=False)
    with project.open_store() as store, day_progress("Delivering") as update:
        report = deliver_plan(store, campaign_id=campaign_id, webhook=webhook, out=out_path,
                              batch_size=batch_size, max_attempts=max_attempts,
                              progress=update)
    click.echo(f"Campaign {campaign_id}: {report.sent:,} sent, {report.already_sent:,} already "
               f"sent, {report.failed:,} failed → {report.target}")
    for error in report.errors[:5]:
        console.print(f"  {error}", markup=False)
    if report.failed:
        raise click.ClickException(
            f"{report.failed:,} deliveries failed; rerun `churnguard deliver {campaign_id}` to "
            "retry them (nothing already sent is sent again)")


def _ci(value: float | None, interval) -> str:
    if value is None:
        return "–"
    if not interval:
        return f"{value:+.3f}"
    return f"{value:+.3f} [{interval[0]:+.3f}, {interval[1]:+.3f}]"


@cli.command()
@click.argument("campaign_id")
@outcome_options
@click.option("--as-of", default=None, callback=date_callback,
              help="Measure with the events up to this date (default: all events).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the measurement as JSON to FILE.")
@project_option
def measure(campaign_id: str, outcome_type: str | None, window: int | None,
            as_of: dt.date | None, json_path: Path | None, project_dir: Path | None) -> None:
    """Measure a campaign against its own control group once its window has passed.

    Per action and risk tier: retention and revenue of the treated and the control customers,
    the incremental retention and the incremental net revenue after the actions' costs, with
    95% confidence intervals. The result is kept in the store and shown in the report; the
    campaign's outcomes also train the next uplift model (the loop closes).
    """
    from churnguard.intervene.measure import measure_campaign, save_measurement

    project = load_project(project_dir)
    outcome_type, window = _outcome(project, outcome_type, window)
    with project.open_store() as store:
        m = measure_campaign(store, campaign_id=campaign_id, outcome_type=outcome_type,
                             window_days=window, as_of=as_of)
        save_measurement(store, m)
    table = Table(title=f"Campaign {campaign_id}: {outcome_type} within {window} days, "
                        "treatment vs control (95% CI)")
    for column in ("action", "tier", "treated", "control", "retention t / c",
                   "incremental retention", "incremental net revenue / customer"):
        table.add_column(column, justify="left" if column in ("action", "tier") else "right")
    for g in m.groups:
        rates = ("–" if g.retention_treated is None or g.retention_control is None
                 else f"{g.retention_treated:.1%} / {g.retention_control:.1%}")
        table.add_row(g.action, g.tier, f"{g.n_treated:,}", f"{g.n_control:,}", rates,
                      _ci(g.incremental_retention, g.incremental_retention_ci),
                      _ci(g.incremental_net_revenue, g.incremental_net_revenue_ci))
    console.print(table)
    for note in m.notes:
        console.print(f"Note: {note}", markup=False)
    if json_path is not None:
        json_path.write_text(m.to_json() + "\n", encoding="utf-8")
    retained, net = m.total_incremental_retained, m.total_incremental_net_revenue
    click.echo(f"Campaign {campaign_id}: "
               + ("incremental figures not available (see the notes)" if retained is None else
                  f"{retained:+.1f} customers retained, {net:+,.2f} net revenue against the "
                  "control group")
               + (f"; written to {json_path}" if json_path else ""))
