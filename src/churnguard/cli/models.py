"""Model commands: ``train``, ``backtest``, ``score``, ``explain``, ``report`` and ``models``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from churnguard.cli.base import (
    BadInput,
    file_option,
    churn_definition,
    cli,
    console,
    date_callback,
    days_option,
    definition_options,
    load_project,
    project_option,
    stage_spinner,
    write_table,
)
from churnguard.cli.scale import duckdb_lake, engine_options, score_on_spark
from churnguard.durations import parse_date
from churnguard.project import Project
from churnguard.report.formatting import probability


def _model_names(value: str) -> tuple[str, ...]:
    from churnguard.models.catalog import KINDS

    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in KINDS]
    if unknown or not names:
        raise BadInput(f"--models: unknown model {unknown[0] if unknown else value!r}; "
                       f"known: {', '.join(KINDS)}")
    return names


def _configured(project: Project, names: Sequence[str]) -> list[Any]:
    """``names`` built as churnguard.toml says ([models.behaviour] for the behaviour models)."""
    from churnguard.training import configured_models

    try:
        return configured_models(names, project.config.models.behaviour, root=project.root)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _train_cutoffs(value: str | None) -> int | list[dt.date] | None:
    if value is None:
        return None
    if value.strip().isdigit():
        return int(value)
    try:
        return [parse_date(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise BadInput(f"--train-cutoffs: {exc}; give a number K or dates D1,D2,...") from None


def champions_definition(store: Any, project: Project) -> Any:
    """The churn definition the champion was trained with, saying so when it is not the one in
    churnguard.toml (scores follow the model; --activity/--lookback/--horizon override)."""
    from churnguard.registry import champion_definition

    configured = project.config.churn
    definition = champion_definition(store, configured)
    if definition != configured:
        console.print(f"Using the champion's churn definition, as it was trained: no "
                      f"{'/'.join(definition.activity)} within {definition.horizon_days} days, "
                      f"population over {definition.lookback_days} days (churnguard.toml says "
                      f"{configured.horizon_days} and {configured.lookback_days} days; "
                      "--horizon, --lookback and --activity override).", markup=False,
                      soft_wrap=True)
    return definition


@cli.command()
@click.option("--models", "models", default="gbdt", show_default=True,
              help="The model to train: recency, btyd, gbdt, behaviour, behaviour_gru, "
              "behaviour_transformer, behaviour+gbdt or ensemble. The behaviour models take "
              "their size from [models.behaviour] in churnguard.toml.")
@click.option("--as-of", default=None, callback=date_callback,
              help="Train as if today were this date (default: on all the data).")
@click.option("--train-cutoffs", type=click.IntRange(min=1), default=None,
              help="Training cutoffs (30 days apart), the newest one horizon before the "
              "validation cutoff [default: up to 3, as many as the history allows].")
@click.option("--promote/--no-promote", default=None,
              help="Make it the champion that `score` uses (default: only if there is none).")
@definition_options
@project_option
def train(models: str, as_of: dt.date | None, train_cutoffs: int | None, promote: bool | None,
          activity: str | None, lookback: int | None, horizon: int | None,
          project_dir: Path | None) -> None:
    """Train a churn model on the newest labelled cutoffs and register it in the store.

    The newest cutoff whose horizon the data covers is the validation cutoff (early stopping and
    calibration); the training cutoffs end their horizons on or before it (the newest one
    horizon before it, the others 30 days apart before that), so no training label overlaps the
    validation labels. Run `churnguard backtest` for an honest, out-of-time measure of the same
    recipe.
    """
    from churnguard.training import train_model

    project = load_project(project_dir)
    definition = churn_definition(project, activity, lookback, horizon)
    (name,) = _model_names(models)[:1]
    (model,) = _configured(project, [name])
    with project.open_store() as store, stage_spinner(f"Training {name}") as update:
        trained = train_model(store, definition=definition, model=model, as_of=as_of,
                              train_cutoffs=train_cutoffs, promote=promote, progress=update)
        _print_skipped_groups(store)
    auc = trained.validation_metrics.get("roc_auc")
    click.echo(f"Trained {trained.version} on {trained.n_train:,} rows "
               f"(cutoffs {', '.join(f'{c:%Y-%m-%d}' for c in trained.train_cutoffs)}; validation "
               f"{trained.validation_cutoff:%Y-%m-%d}, ROC-AUC {auc:.3f} in-sample)"
               + ("; it is now the champion" if trained.promoted else ""))


def _print_skipped_groups(store: Any) -> None:
    """Say which feature groups the data could not support (e.g. an orders-only export)."""
    from churnguard.features import feature_groups_available

    missing = [g for g in feature_groups_available(store) if not g.available]
    if missing:
        console.print("Feature groups not computed: "
                      + "; ".join(f"{g.group} ({g.reason})" for g in missing), markup=False)


def print_leaderboard(document: dict[str, Any], chosen: str | None = None) -> None:
    table = Table("model", "ROC-AUC", "PR-AUC", "Brier", "ECE", "lift@10%", "recall@10%",
                  title=f"Out-of-time backtest: test cutoff {document['test_cutoff']}, "
                  f"{document['n_test']:,} customers, churn rate {document['base_rate']:.1%}")

    def fmt(value: Any) -> str:
        return "—" if value is None else f"{value:.3f}"

    for row in sorted(document["models"], key=lambda r: -(r["roc_auc"] or 0)):
        name = row["name"] + (" (truth)" if row["name"] == "oracle" else "")
        table.add_row(name, fmt(row["roc_auc"]), fmt(row["pr_auc"]), fmt(row["brier"]),
                      fmt(row["ece"]), fmt(row["lift_at_10"]), fmt(row["recall_at_10"]),
                      style="bold" if row["name"] == chosen else None)
    Console(highlight=False).print(table)
    gaps = document.get("oracle_auc_gap")
    if gaps:
        Console(highlight=False).print(
            "Gap to the oracle's ROC-AUC: "
            + ", ".join(f"{k} {v:+.3f}" for k, v in gaps.items() if v is not None))


@cli.command()
@days_option("--horizon", default=None, help="Churn horizon, e.g. 90d (default: churnguard.toml).")
@click.option("--test-cutoff", default=None, callback=date_callback,
              help="Cutoff to test on (default: the newest whose horizon is observed).")
@click.option("--train-cutoffs", "train_cutoffs", default=None, metavar="K|D1,D2,...",
              help="K training cutoffs 30 days apart, the newest one horizon before the "
              "validation cutoff; or the dates (the newest is the validation cutoff; the others "
              "should end their horizons on or before it) [default: up to 3, as many as the "
              "history allows].")
@click.option("--models", default="recency,btyd,gbdt", show_default=True,
              help="Comma-separated models to compare.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the leaderboard as JSON here.")
@project_option
def backtest(horizon: int | None, test_cutoff: dt.date | None, train_cutoffs: str | None,
             models: str, json_path: Path | None, project_dir: Path | None) -> None:
    """Measure models out of time: fit on earlier cutoffs, test on a later one.

    The validation cutoff (early stopping and calibration) is the newest whose horizon ends on
    or before the test cutoff; the training cutoffs end their horizons on or before the
    validation cutoff, so no training label overlaps the labels the fit is judged on (see
    docs/models.md). The leaderboard lists every model, and on simulated data
    (simulation.truth in churnguard.toml) the oracle that knows the true churn probabilities.
    """
    from churnguard.evaluate import backtest as run_backtest
    from churnguard.reporting import save_backtest

    project = load_project(project_dir)
    definition = churn_definition(project, None, None, horizon)
    names = _model_names(models)
    chosen = _configured(project, names)
    cutoffs = _train_cutoffs(train_cutoffs)
    truth = project.simulation_truth()
    with project.open_store() as store:
        with stage_spinner("Backtest") as update:
            result = run_backtest(store, definition=definition, test_cutoff=test_cutoff,
                                  train_cutoffs=cutoffs, models=chosen, truth=truth,
                                  progress=update)
        run_id = save_backtest(store, result)
        _print_skipped_groups(store)
    document = result.to_dict()
    print_leaderboard(document)
    if json_path is not None:
        result.to_json(json_path)
    click.echo(f"Backtest {run_id}: test cutoff {document['test_cutoff']}, "
               f"{document['n_test']:,} customers" + (f"; JSON in {json_path}" if json_path else ""))


@cli.command()
@click.option("--as-of", default=None, callback=date_callback,
              help="Score as of this date (default: just after the last event).")
@click.option("--out", "out", default=None, metavar="PATH",
              help="Write the scores to FILE.csv or FILE.parquet (required with --events; with "
                   "--engine spark: a Parquet folder, a local path or a URI such as "
                   "s3a://bucket/scores/).")
@click.option("--lang", type=click.Choice(["en", "zh"]), default=None,
              help="Language of the reasons (default: scoring.lang in churnguard.toml).")
@engine_options
@definition_options
@project_option
def score(as_of: dt.date | None, out: str | None, lang: str | None, engine: str | None,
          activity: str | None, lookback: int | None, horizon: int | None,
          project_dir: Path | None, **lake: str | None) -> None:
    """Score every customer in the population with the champion model, with three reasons each.

    Columns: user_id, p_churn (calibrated probability of churning within the horizon),
    risk_tier (high/medium/low by scoring.high and scoring.medium), reason_1..reason_3,
    model_version. The scores are also kept in the store.

    With --events the customers' events are read from a lake instead, scored with the same
    champion, features and reasons, and written to --out only (not kept in the store):
    --engine duckdb (the default) reads Parquet files in DuckDB, --engine spark reads Parquet
    files or a table on Apache Spark into a Parquet folder (docs/scale.md).
    """
    from churnguard.lake import score_from_lake
    from churnguard.scoring import score_customers

    tables = None if engine == "spark" else duckdb_lake(lake)
    if tables is not None and out is None:
        raise BadInput("--events needs --out FILE.csv|FILE.parquet: a lake's scores are not "
                       "kept in the project's store")
    out_path = None if engine == "spark" else file_option(out, "out")
    if out_path is not None and out_path.suffix.lower() not in (".csv", ".parquet"):
        raise BadInput(f"--out {out_path}: write .csv or .parquet")
    project = load_project(project_dir)
    told = any(v is not None for v in (activity, lookback, horizon))
    if engine == "spark":
        score_on_spark(project=project, as_of=as_of, out=out, lang=lang, **lake,
                       definition_of=lambda store: (
                           churn_definition(project, activity, lookback, horizon) if told
                           else champions_definition(store, project)))
        return
    with (project.open_store(read_only=tables is not None) as store,
          stage_spinner("Scoring") as update):
        definition = (churn_definition(project, activity, lookback, horizon) if told
                      else champions_definition(store, project))
        if tables is not None:
            result = score_from_lake(store, tables, definition=definition,
                                     tiers=project.config.scoring, as_of=as_of, lang=lang,
                                     progress=update)
        else:
            result = score_customers(store, definition=definition,
                                     tiers=project.config.scoring, as_of=as_of, lang=lang,
                                     progress=update)
    frame = result.scores
    if out_path is not None:
        write_table(frame, out_path)
    tiers = frame["risk_tier"].value_counts()
    click.echo(f"Scored {len(frame):,} customers as of {result.as_of:%Y-%m-%d} with "
               f"{result.model_version}: {tiers.get('high', 0):,} high, "
               f"{tiers.get('medium', 0):,} medium, {tiers.get('low', 0):,} low risk"
               + (f"; written to {out_path}" if out_path else ""))


@cli.command()
@click.argument("user_id")
@click.option("--as-of", default=None, callback=date_callback,
              help="Explain as of this date (default: just after the last event).")
@click.option("--lang", type=click.Choice(["en", "zh"]), default=None,
              help="Language of the reasons (default: scoring.lang in churnguard.toml).")
@project_option
def explain(user_id: str, as_of: dt.date | None, lang: str | None, project_dir: Path | None) -> None:
    """Why the champion model thinks USER_ID may leave: probability, tier and reasons."""
    from churnguard.scoring import explain_customer

    project = load_project(project_dir)
    with project.open_store(read_only=True) as store:
        definition = champions_definition(store, project)
        result = explain_customer(store, user_id, definition=definition,
                                  tiers=project.config.scoring, as_of=as_of, lang=lang)
    click.echo(f"{result.user_id}: P(churn within {definition.horizon_days} days) = "
               f"{probability(result.p_churn)} ({result.risk_tier} risk) "
               f"as of {result.as_of:%Y-%m-%d}, "
               f"model {result.model_version}")
    for k, sentence in enumerate(result.reasons, 1):
        click.echo(f"  {k}. {sentence}")
    if not result.reasons:
        click.echo("  No feature pushes this customer toward churn.")


@cli.command()
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("report.html"), show_default=True, help="HTML file to write.")
@project_option
def report(out_path: Path, project_dir: Path | None) -> None:
    """Write a self-contained HTML report (opens offline): leaderboard, curves, calibration,
    gains, score distribution, feature importance, churn by segment, the definition preview
    and the customers most at risk with their reasons.

    What has not been computed yet (no backtest, no model, no scores) is left out: the report
    and stderr say which command makes it."""
    from churnguard.report import render_report
    from churnguard.report.data import missing_line
    from churnguard.reporting import build_report_data

    project = load_project(project_dir)
    with project.open_store(read_only=True) as store:
        data = build_report_data(store, title=f"Churn report — {project.root.name}",
                                 definition=project.config.churn, config=project.config)
    path = render_report(data, out_path)
    click.echo(f"Report written to {path}")
    for key in data.missing:
        click.echo(f"Not in the report: {missing_line(key)}", err=True)


class _ModelsGroup(click.Group):
    """``churnguard models [VERSION]`` as before, and its subcommands: a first argument that
    names no subcommand is a VERSION to show."""

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "show", self.commands["show"], args
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] [VERSION | COMMAND [ARGS]...]")


def _group_project(project_dir: Path | None) -> Path | None:
    """--project given to the subcommand, else to ``models`` itself."""
    if project_dir is not None:
        return project_dir
    parent = click.get_current_context().parent
    return None if parent is None else parent.params.get("project_dir")


@cli.group(name="models", cls=_ModelsGroup, invoke_without_command=True)
@project_option
@click.pass_context
def models_command(ctx: click.Context, project_dir: Path | None) -> None:
    """List the registered model versions; the champion is marked.

    With VERSION, print that version as JSON: its settings (the model's hyper-parameters and
    the churn definition), data window, validation metrics and features. The subcommands run
    and audit the champion/challenger gate (docs/operate.md, "The gate").
    """
    if ctx.invoked_subcommand is not None:
        return
    from churnguard.registry import CHAMPION, alias_version, list_models

    project = load_project(project_dir)
    with project.open_store(read_only=True) as store:
        versions, champion = list_models(store), alias_version(store, CHAMPION)
    if not versions:
        click.echo("No models yet; run `churnguard train`.")
        return
    table = Table("version", "model", "created (UTC)", "validation cutoff", "champion")
    for v in versions:
        table.add_row(v.version, v.name, f"{v.created_at:%Y-%m-%d %H:%M}",
                      str(v.data_window.get("validation_cutoff", "")),
                      "★" if v.version == champion else "")
    Console(highlight=False).print(table)


@models_command.command(name="show", hidden=True)
@click.argument("version")
@project_option
def models_show(version: str, project_dir: Path | None) -> None:
    """Print VERSION as JSON (`churnguard models VERSION`)."""
    from churnguard.registry import CHAMPION, alias_version, get_model_version

    project = load_project(_group_project(project_dir))
    with project.open_store(read_only=True) as store:
        chosen = get_model_version(store, version)
        is_champion = alias_version(store, CHAMPION) == chosen.version
    click.echo(json.dumps({"version": chosen.version, "name": chosen.name,
                           "created_at": chosen.created_at.isoformat(),
                           "champion": is_champion, "config": chosen.config,
                           "data_window": chosen.data_window, "metrics": chosen.metrics,
                           "features": chosen.features}, indent=2, default=str))


def _print_decision(decision: Any) -> None:
    click.echo(f"{decision.outcome}: {decision.reason}")
    click.echo(f"Decision {decision.decision_id} left "
               f"{decision.champion_after or 'no model'} as the champion.")


@models_command.command(name="challenge")
@click.option("--as-of", default=None, callback=date_callback,
              help="Judge as if the data ended on this date (default: on all the data).")
@project_option
def models_challenge(as_of: dt.date | None, project_dir: Path | None) -> None:
    """Train the champion's recipe as of the newest matured cohort, judge it against the
    champion's on that cohort (both out of time there), and when it passes the gate deploy the
    same recipe refitted on all the labels.

    Promoted when the one-sided lower bound of the paired ΔAUC (challenger − champion,
    bootstrap over customers) is at least −tolerance and its ECE on the cohort is at most
    max_ece ([gate] in churnguard.toml; defaults 95%, −0.005 and 0.03). A champion trained
    past the cohort is stood for by its recipe refitted one horizon earlier; when it already
    learned from all the data there is nothing new: "no evidence", it stays. Every decision
    is recorded (`churnguard models decisions`).
    """
    from churnguard.champions import challenge

    project = load_project(_group_project(project_dir))
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with project.open_store() as store, stage_spinner("Challenging the champion") as update:
        decision = challenge(store, definition=project.config.churn, as_of=as_of,
                             config=project.config.gate, progress=update)
    if decision.decided_at < started and decision.cohort_cutoff is not None:
        click.echo(f"Already decided on the cohort at {decision.cohort_cutoff:%Y-%m-%d} "
                   f"({decision.decided_at:%Y-%m-%d %H:%M} UTC); each cohort is judged once.")
    _print_decision(decision)


def _figure(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


@models_command.command(name="decisions")
@click.option("--json", "as_json", is_flag=True,
              help="Print the decisions as a JSON list (oldest first) on stdout.")
@project_option
def models_decisions(as_json: bool, project_dir: Path | None) -> None:
    """The champion/challenger decisions, oldest first, with their evidence: the cohort, the
    ROC-AUC of each model, ΔAUC and its lower bound, the ECEs, the thresholds and the reason.

    Outcomes: promoted (the challenger's recipe, refitted on all the labels, became
    champion), kept, no-evidence (nothing new to learn, or nothing to judge it on out of time;
    the champion stays), rolled-back.
    """
    from churnguard.registry import list_decisions

    project = load_project(_group_project(project_dir))
    with project.open_store(read_only=True) as store:
        decisions = list_decisions(store)
    if as_json:
        click.echo(json.dumps([d.to_dict() for d in decisions], indent=2, default=str))
        return
    if not decisions:
        click.echo("No decisions yet; `churnguard models challenge` takes one.")
        return
    for d in decisions:
        click.echo(f"{d.decided_at:%Y-%m-%d %H:%M} UTC  {d.outcome} ({d.trigger})  "
                   f"{d.decision_id}")
        click.echo(f"  champion {d.champion_version or 'none'} -> {d.champion_after or 'none'}"
                   + (f"; challenger {d.challenger_version}" if d.challenger_version else ""))
        if d.cohort_cutoff is not None and d.n_customers is not None:
            level = "" if d.confidence is None else f"{d.confidence:.0%} "
            click.echo(f"  cohort {d.cohort_cutoff:%Y-%m-%d}, {d.n_customers:,} customers: "
                       f"ROC-AUC {_figure(d.champion_auc, '.4f')} -> "
                       f"{_figure(d.challenger_auc, '.4f')}, ΔAUC {_figure(d.delta_auc, '+.4f')} "
                       f"({level}lower bound {_figure(d.delta_auc_lower, '+.4f')}), ECE "
                       f"{_figure(d.champion_ece, '.4f')} -> {_figure(d.challenger_ece, '.4f')}")
        click.echo(f"  {d.reason}")


@models_command.command(name="rollback")
@click.option("--to", "to", default=None, metavar="VERSION",
              help="The earlier champion to restore (default: the one before the current "
              "champion, skipping any that were themselves rolled back).")
@click.option("--reason", required=True, help="Why; recorded with the decision.")
@project_option
def models_rollback(to: str | None, reason: str, project_dir: Path | None) -> None:
    """Set the champion back to the previous champion (or --to VERSION, an earlier champion)
    and record the decision with the reason. The alias move and the record are one
    transaction."""
    from churnguard.registry import rollback

    project = load_project(_group_project(project_dir))
    with project.open_store() as store:
        decision = rollback(store, reason=reason, to=to)
    click.echo(f"Rolled back: the champion is {decision.champion_after} again (was "
               f"{decision.champion_version}); decision {decision.decision_id}.")
