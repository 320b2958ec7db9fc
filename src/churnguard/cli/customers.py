"""The ``erase`` command: a customer's right to be forgotten, the same erasure as
``DELETE /v1/users/{id}`` (both call :func:`churnguard.customers.erase`)."""

from __future__ import annotations

from pathlib import Path

import click

from churnguard.cli.base import BadInput, cli, console, load_project, project_option
from churnguard.project import lock_wait_s


@cli.command()
@click.argument("user_id", required=False)
@click.option("--finish", is_flag=True,
              help="Only rewrite the store for earlier erasures whose rewrite is pending "
                   "(another process held the file); `churnguard status` counts them.")
@project_option
def erase(user_id: str | None, finish: bool, project_dir: Path | None) -> None:
    """Erase every trace of USER_ID (the id as the shop writes it; hashed first when the project
    pseudonymises): the rows of every table and the quarantined records that name the customer,
    the files under the project folder that hold the id, and the freed pages of the store file.

    An audit row with the erasure id and the rows deleted per table is kept; neither it nor the
    output names the customer. When another process holds the store file at the end, the
    rewrite waits for it (up to 30 s) and is then left pending for `--finish`. An id the store does not know is bad input (exit code 2) and
    changes nothing. While `churnguard serve` runs on the project, the store is borrowed
    from it (docs/service.md); its DELETE /v1/users/{id} does the same.
    """
    from churnguard import customers

    if (user_id is None) != finish:
        raise BadInput("give a USER_ID to erase, or --finish alone")
    project = load_project(project_dir)
    access = customers.StoreFile(project.store_path, wait_s=lock_wait_s())
    # One borrow from a running service across the row deletion and the file rewrite: the
    # rewrite needs the file closed by everyone.
    with project.holding_store():
        if finish:
            done = customers.finish_pending(project.root, access)
        else:
            report = customers.erase(user_id, root=project.root, config=project.config.ingest,
                                     access=access)
    if finish:
        click.echo(f"Rewrote the store for {len(done):,} pending erasure(s)" if done
                   else "No erasure is pending")
        return
    click.echo(f"Erased {report.total_rows:,} rows, {report.files_deleted:,} cache files and the "
               f"customer's rows of {len(report.files_rewritten):,} exports; erasure id "
               f"{report.erasure_id}")
    if not report.compacted:
        console.print("Another process held the store file, so it is not rewritten yet: the "
                      "rows are gone, but freed pages may still hold the customer's bytes. Run "
                      "`churnguard erase --finish` once it is free (`serve` does it at start).",
                      markup=False)
    for path in report.files_rewritten:
        console.print(f"  rewritten without the customer: {path}", markup=False)
    if report.files_to_review:
        console.print("These files hold the id but are not tables churnguard can edit; they were "
                      "left as they were. Remove the customer from them, or delete them (a "
                      "report: run `churnguard report` again):", markup=False)
        for path in report.files_to_review:
            console.print(f"  {path}", markup=False)
