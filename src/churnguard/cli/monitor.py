"""The ``monitor`` command: drift with calibrated alarms, the label-free estimate and the realized
metrics of matured cohorts (:func:`churnguard.monitor.run_monitor`; docs/monitor.md)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
from rich.table import Table

from churnguard.cli.base import (
    cli,
    console,
    date_callback,
    load_project,
    project_option,
    stage_spinner,
)


def _num(value: object, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def _print_drift(document: dict) -> None:
    table = Table(title=f"Drift ({document['statistic']}, FDR {document['fdr']:g}, "
                        f"{document['bootstrap']} bootstrap draws at {document['batch_size']:,} "
                        "rows)")
    for name in ("input", document["statistic"], "unchanged p99", "p", "q", "alarm"):
        table.add_column(name, justify="left" if name in ("input", "alarm") else "right")
    rows = ([document["score_drift"]] if document["score_drift"] else []) + sorted(
        document["features"], key=lambda f: (not f["alarm"], f["p_value"]))
    for f in rows:
        table.add_row(f["name"], _num(f["statistic"], 4), _num(f["null_p99"], 4),
                      _p(f["p_value"]), _p(f["q_value"]), "ALARM" if f["alarm"] else "")
    console.print(table)


def _print_estimate(document: dict) -> None:
    found = document["estimate"]
    if found is None:
        console.print("No label-free estimate: there is no champion model.", markup=False)
        return
    console.print(
        f"Label-free estimate of the batch ({found['n']:,} customers): churn rate "
        f"{found['churn_rate']:.1%}, ROC-AUC {_num(found['auc'])} (labels drawn from the "
        f"probabilities: {_num(found['auc_low'])}-{_num(found['auc_high'])}).", markup=False)
    console.print(f"  Limit: {document['estimate_limit']}.", markup=False)


def _print_realized(document: dict) -> None:
    if not document["realized"]:
        console.print("No matured cohort yet: a scoring run matures one horizon after its "
                      "cutoff (run `churnguard score` regularly).", markup=False)
        return
    table = Table(title="Realized on matured cohorts (treated customers left out)")
    for name in ("cutoff", "model", "customers", "treated left out", "control", "churn rate",
                 "mean p", "ROC-AUC", "ECE", "lift@10%"):
        table.add_column(name, justify="left" if name in ("cutoff", "model") else "right")
    for c in document["realized"]:
        table.add_row(c["as_of"][:10], c["model_version"], f"{c['n']:,}",
                      f"{c['treated_excluded']:,}", f"{c['control']:,}",
                      "—" if c["churn_rate"] is None else f"{c['churn_rate']:.1%}",
                      "—" if c["mean_p"] is None else f"{c['mean_p']:.1%}", _num(c["auc"]),
                      _num(c["ece"]), _num(c["lift_at_10"], 2))
    console.print(table)


@cli.command()
@click.option("--as-of", default=None, callback=date_callback,
              help="Monitor the population at this date (default: just after the last event).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the whole report as JSON on stdout (the same document as "
                   "GET /v1/monitor) instead of the tables.")
@project_option
def monitor(as_of: dt.date | None, as_json: bool, project_dir: Path | None) -> None:
    """Has anything changed, and how well is the champion doing?

    Drift: every input of the champion and its scores, the population at --as-of (the batch)
    against the population [monitor] reference_lag_days (7) before it, or the champion's
    training window with reference = "champion" (the reference), each checked by PSI or
    Jensen-Shannon with its threshold calibrated to the batch's size by bootstrap, and alarms
    decided across inputs by Benjamini-Hochberg at [monitor] fdr (so that on unchanged data
    about that share of checks alarms, whatever the size). Then a label-free estimate of the
    batch's churn rate and ROC-AUC from the champion's probabilities (it cannot see a change in
    how behaviour maps to churn), and the realized ROC-AUC, calibration and lift of every stored
    scoring run whose horizon has passed, without the customers a campaign treated, and the
    label alarm on the newest of them: its churn rate and ROC-AUC against what the model's
    probabilities claimed, at a false-alarm rate of [monitor] label_alpha. Settings: the
    [monitor] section of churnguard.toml. Exit code 0 whether or not anything alarmed: read
    "drifted" (drift), "label_alarm" and "alarm" (either) in the JSON.
    """
    from churnguard.monitor import run_monitor
    from churnguard.registry import champion_definition

    project = load_project(project_dir)
    with project.open_store() as store, stage_spinner("Monitoring") as update:
        definition = champion_definition(store, project.config.churn)
        report = run_monitor(store, as_of=dt.datetime.combine(as_of, dt.time()) if as_of else None,
                             config=project.config.monitor, progress=update,
                             definition=definition)
    document = report.to_dict()
    if as_json:
        click.echo(json.dumps(document, indent=2, allow_nan=False))
        return
    console.print(f"Batch: the population at {report.as_of:%Y-%m-%d} ({report.batch_size:,} "
                  f"customers). Reference: {report.reference.description}.", markup=False)
    _print_drift(document)
    _print_estimate(document)
    _print_realized(document)
    console.print("Label check: " + ("none (no scoring run has matured by then, or it holds "
                                     "fewer than [monitor] label_min_customers customers)"
                                     if report.label is None else report.label.reason) + ".",
                  markup=False)
    for line in report.notes:
        console.print(f"Note: {line}", markup=False)
    click.echo(f"{len(report.alarms)} drift alarm(s)" + (
        f": {', '.join(report.alarms[:10])}{' ...' if len(report.alarms) > 10 else ''}"
        if report.alarms else "") + f" at {report.as_of:%Y-%m-%d}"
        + ("; a label alarm" if report.label and report.label.alarm else ""))
