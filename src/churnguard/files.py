"""The files churnguard writes for people and other tools: exports of scores and plans.

Two promises hold for every one of them:

* **Atomic**: a file is written beside its destination, flushed to disk and renamed into place, so
  a reader (or a crash) never sees half of it, and a failed write leaves no temporary file.
* **Safe to open in a spreadsheet**: a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab
  or a carriage return would run as a formula in Excel, LibreOffice or Google Sheets (CSV
  injection, OWASP); such cells are written with a leading apostrophe, which spreadsheets show
  as text. Numbers are written as they are; a carriage return inside a cell becomes a line feed
  (which the writer quotes). Every CSV the product writes goes through :func:`csv_text`,
  :func:`write_table` or, row by row, :func:`csv_cell`.

>>> import pandas as pd, pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> frame = pd.DataFrame({"user_id": ["u1", "=HYPERLINK(1)"], "p_churn": [0.5, -0.25]})
>>> write_table(frame, folder / "s.csv")
>>> (folder / "s.csv").read_text().splitlines()
['user_id,p_churn', 'u1,0.5', "'=HYPERLINK(1),-0.25"]
>>> sorted(p.name for p in folder.iterdir())  # no temporary file left behind
['s.csv']
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

TABLE_SUFFIXES = (".csv", ".parquet")
# What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    r"""``value`` as a CSV cell that no spreadsheet runs as a formula.

    A carriage return inside a cell becomes a line feed: a CSV writer quotes a cell with a line
    feed, not one with a bare carriage return, which readers take for the end of the row.

    >>> csv_cell("=1+1"), csv_cell("@SUM(A1)"), csv_cell("ok"), csv_cell(-3), csv_cell("a\r\nb")
    ("'=1+1", "'@SUM(A1)", 'ok', -3, 'a\nb')
    """
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_START):
        value = "'" + value
    return value.replace("\r\n", "\n").replace("\r", "\n")


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells are :func:`csv_cell`; numeric columns untouched."""
    safe = frame.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column].dtype):
            safe[column] = safe[column].map(csv_cell)
    return safe


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text (``\\n`` line ends), formula-safe."""
    return csv_safe(frame).to_csv(index=False, lineterminator="\n")


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` for a temporary file beside ``path``, flush it to disk and rename it
    onto ``path``; on any failure the temporary file is removed and ``path`` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame to ``path`` as Parquet when the name ends in .parquet, else as
    formula-safe CSV (UTF-8), atomically."""
    if path.suffix.lower() == ".parquet":
        replace_atomically(path, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        replace_atomically(path, lambda tmp: tmp.write_text(csv_text(frame), encoding="utf-8"))
