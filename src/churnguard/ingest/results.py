"""What an ingest call reports: the problems found in the input, the error for bad input, the
report of a finished call, and the running totals behind it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from churnguard.errors import ChurnguardError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (file, 1-based data row, column) and why.

    ``line`` is the physical line of the row in a text file (CSV, JSONL) when known.
    """

    file: str
    row: int | None
    column: str | None
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}" + (f" (line {self.line})" if self.line else ""))
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return ": ".join([where[0], ", ".join(where[1:])] if len(where) > 1 else where) + (
            f": {self.reason}"
        )


class IngestError(ChurnguardError):
    """Bad input. ``str(exc)`` is the whole message for the user; ``problems`` the details."""

    code = "invalid_input"

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems: list[Problem] = list(problems)


def _problem_error(problem: Problem) -> IngestError:
    return IngestError(str(problem), [problem])


@dataclass(frozen=True)
class IngestReport:
    batch_id: str
    kind: str
    files: tuple[str, ...]
    rows_read: int
    rows_added: int
    rows_updated: int
    # Already in the store, or repeated within the input.
    rows_duplicate: int
    # Bad rows that were skipped or quarantined.
    rows_bad: int
    on_error: str
    problems: tuple[Problem, ...] = ()
    # Columns of the input that were not stored (events, campaigns, labels), per file.
    ignored_columns: tuple[str, ...] = ()
    # Extra columns kept as attributes (users, items).
    attribute_columns: tuple[str, ...] = ()
    # Plain sentences worth showing, e.g. that a file held no data rows.
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.rows_added or self.rows_updated or (self.rows_bad and self.on_error == "quarantine"))

    def summary(self) -> str:
        lines = [
            f"{self.kind}: read {self.rows_read} rows from {len(self.files)} file(s): "
            f"{self.rows_added} added, {self.rows_updated} updated, "
            f"{self.rows_duplicate} duplicate, {self.rows_bad} bad ({self.on_error})"
        ]
        lines += [f"  {p}" for p in self.problems]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class _Totals:
    read: int = 0
    added: int = 0
    updated: int = 0
    duplicate: int = 0
    bad: int = 0
