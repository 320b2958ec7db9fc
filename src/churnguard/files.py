"""Atomic exports: a file is written beside its destination and renamed into place, so a reader
(or a crash) never sees half of it.

>>> import pandas as pd, pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_table(pd.DataFrame({"user_id": ["u1"], "p_churn": [0.5]}), folder / "s.csv")
>>> (folder / "s.csv").read_text().splitlines()
['user_id,p_churn', 'u1,0.5']
>>> sorted(p.name for p in folder.iterdir())  # no temporary file left behind
['s.csv']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

TABLE_SUFFIXES = (".csv", ".parquet")


def write_table(frame: Any, path: Path) -> None:
    """Write a DataFrame to ``path`` as CSV, or as Parquet when the name ends in .parquet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
