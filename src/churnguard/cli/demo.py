"""The ``demo`` command: the main job end to end on a simulated shop (``churnguard.demo``), shown
as numbered, timed steps with progress bars and the leaderboard and plan tables."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import click

from churnguard.cli.base import (
    cli,
    console,
    day_progress,
    epoch_progress,
    project_option,
    stage_spinner,
)
from churnguard.cli.campaigns import print_plan_summary
from churnguard.cli.models import print_leaderboard
from churnguard.demo import format_duration, run_demo
from churnguard.models.catalog import demo_settings
from churnguard.project import resolve_project_dir


_SIZE = demo_settings("behaviour")  # the behaviour models' size in the demo, for --help


class ConsoleView:
    """The demo's steps on the terminal (stderr): "k/n text", the step's results, its time."""

    @contextmanager
    def step(self, number: int, total: int, text: str) -> Iterator[None]:
        console.print(f"[bold]{number}/{total}[/bold] {text}", markup=True)
        started = time.perf_counter()
        yield
        console.print(f"      ({format_duration(time.perf_counter() - started)})")

    def note(self, text: str) -> None:
        console.print(f"      {text}", markup=False)

    def stages(self, label: str) -> AbstractContextManager[Callable[[str], None]]:
        return stage_spinner(label)

    def days(self, label: str) -> AbstractContextManager[Callable[[int, int], None]]:
        return day_progress(label)

    def epochs(self, label: str, total: int) -> AbstractContextManager[Callable[[str], None]]:
        return epoch_progress(label, total)

    def leaderboard(self, document: dict[str, Any], chosen: str | None) -> None:
        print_leaderboard(document, chosen=chosen)

    def plan_summary(self, summary: dict[str, Any]) -> None:
        print_plan_summary(summary)


@cli.command()
@click.option("--users", "n_users", type=click.IntRange(min=100), default=20_000, show_default=True,
              help="Customers in the simulated shop.")
@click.option("--days", type=click.IntRange(min=400), default=730, show_default=True,
              help="Days of simulated history (at least 400: three training cutoffs, validation "
              "and test, each with a 90-day horizon).")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--budget", type=click.FloatRange(min=0), default=None,
              help="Budget of the retention campaign (default: 0.25 per customer in the "
              "population).")
@click.option("--behaviour/--no-behaviour", default=True, show_default=True,
              help="Pretrain the behaviour encoder and backtest the behaviour and behaviour+gbdt "
              f"models at the demo's small size (pretraining: at most "
              f"{_SIZE['pretrain_max_customers']:,} customers, {_SIZE['pretrain_epochs']} "
              f"epochs; GRU of width {_SIZE['d_model']} over the newest "
              f"{_SIZE['max_len']} events per customer; fine-tuning: at most "
              f"{_SIZE['epochs']} epochs).")
@project_option
def demo(n_users: int, days: int, seed: int, budget: float | None, behaviour: bool,
         project_dir: Path | None) -> None:
    """Run the main job end to end on a simulated shop in the embedded store.

    Simulates a shop into PROJECT/data (the project is ./demo-project when run by `make demo`),
    creates the project, ingests every file, pretrains the behaviour encoder on the customers'
    event streams without labels (PROJECT/pretrained; not with --no-behaviour), backtests
    recency, BTYD, gradient-boosted trees, behaviour and behaviour+gbdt (not with
    --no-behaviour) out of time against the simulator's oracle, trains the
    champion (the best out-of-time ROC-AUC among the models that give reasons), scores every
    customer with reasons, measures the newest past campaign against its control group, plans a
    retention campaign under the budget (uplift, value, allocation, control group, items and
    messages) and writes the HTML report. The models run at the demo's small size (the `demo`
    settings in churnguard/models/catalog.py; the trees learn at rate 0.06 instead of 0.03, which halves their training
    and reasons time). Each step prints its time. Rerunning is safe: the same
    seed gives the same data, ingestion adds nothing twice and the campaign of the same day is
    planned once.
    """
    root = resolve_project_dir(project_dir)
    done = run_demo(root, view=ConsoleView(), n_users=n_users, days=days, seed=seed,
                    budget=budget, behaviour=behaviour)
    click.echo(f"Scores: {done.scores}")
    click.echo(f"Plan: {done.plan}")
    click.echo(f"Report: {done.report}")
    click.echo(f"Project ready in {root} in {format_duration(done.seconds)}; "
               f"simulated ground truth in {done.data_dir / 'truth'}")
    click.echo(f"Dashboard: CHURNGUARD_ENV=development churnguard serve --project {root} "
               "(then open http://127.0.0.1:8000/)")
