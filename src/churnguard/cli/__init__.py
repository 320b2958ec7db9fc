"""The ``churnguard`` command: one sub-command per verb, each a thin shell over the library.

One module per command group: ``base`` (the group and the options every command shares),
``data`` (init, simulate, ingest, churn preview, status), ``models`` (train, backtest, score,
explain, report, models), ``scale`` (features; score --engine spark), ``behaviour`` (pretrain), ``campaigns`` (uplift, plan, deliver,
measure), ``customers`` (erase), ``monitor`` (monitor), ``service`` (serve), ``operate`` (run,
cycles), ``voice`` (voice) and ``demo``. Each imports ``base`` and registers its commands on :data:`cli`; this module
imports them all and maps failures to the exit codes in one place (:func:`main`).

Exit codes (DESIGN.md): 0 success, 2 bad usage or bad input (the message names file, row, column
and reason), 1 anything else.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

# Importing the command modules registers their commands on `cli`.
from churnguard.cli import (  # noqa: F401
    behaviour,
    campaigns,
    customers,
    data,
    demo,
    models,
    monitor,
    operate,
    scale,
    service,
    voice,
)
from churnguard.cli.base import BadInput, cli, console
from churnguard.errors import EXIT_FAILURE, EXIT_OK, ChurnguardError, exit_code

__all__ = ["BadInput", "cli", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and map failures to the documented exit codes."""
    try:
        cli.main(args=argv, prog_name="churnguard", standalone_mode=False)
    except click.exceptions.Abort:
        console.print("Aborted.")
        return EXIT_FAILURE
    except click.ClickException as exc:  # BadInput and click's own usage errors (exit code 2)
        exc.show()
        return exc.exit_code
    except ChurnguardError as exc:  # as click shows its own errors: one unwrapped line on stderr
        click.echo(f"Error: {exc}", err=True)
        return exit_code(exc)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except Exception as exc:  # anything unexpected: a short message, the traceback on request
        console.print(f"Error: {type(exc).__name__}: {exc}", markup=False)
        if os.environ.get("CHURNGUARD_DEBUG", "") not in ("", "0"):
            traceback.print_exc()
        else:
            console.print("Set CHURNGUARD_DEBUG=1 for the full traceback.")
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
