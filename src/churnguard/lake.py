"""``churnguard features|score --engine duckdb --events PATH``: a lake's Parquet read by DuckDB,
with the same results as the Spark path and as the project's store on the same data.

No second implementation: the lake's tables are loaded into a temporary store (the store's
own schema, from its migrations), normalised as the Spark jobs normalise their sources (the
same columns and types: :data:`~churnguard.spark.lake.JOB_EVENT_COLUMNS`,
:data:`~churnguard.features.spark.TABLE_COLUMNS`, :data:`~churnguard.spark.snapshots.LABEL_COLUMNS`;
missing optional columns are NULL, timestamps are UTC), and the store's own snapshot, feature
and scoring code runs on it. The model is the project's champion, copied from the project's
registry, as ``--engine spark`` takes it.

A source is a Parquet file, a folder (every ``*.parquet`` below it, ``key=value`` folders as
columns, as Spark reads a partitioned folder) or a glob. Table names are read through a Spark
session's catalog and are refused here; so are remote URIs (``s3a://``, ``https://``) unless
DuckDB's ``httpfs`` extension is already installed: nothing is downloaded at run time.

>>> parquet_pattern("/lake/events/*.parquet"), parquet_pattern("s3a://b/events/")
('/lake/events/*.parquet', 's3://b/events/**/*.parquet')
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from churnguard.config import ChurnDefinition, ScoringConfig
from churnguard.cutoffs import resolve_as_of
from churnguard.errors import ChurnguardError
from churnguard.features.spark import TABLE_COLUMNS
from churnguard.registry import CHAMPION, set_alias
from churnguard.scoring import ScoreResult, champion, score_customers
from churnguard.snapshots import snapshot_table
from churnguard.spark.lake import JOB_EVENT_COLUMNS, REQUIRED_EVENT_COLUMNS, is_path
from churnguard.spark.scoring import reads_sequences
from churnguard.spark.snapshots import LABEL_COLUMNS
from churnguard.store import Store

__all__ = ["LakeError", "LakeTables", "features_from_lake", "lake_store", "parquet_pattern",
           "score_from_lake"]

# The Spark jobs' column types in DuckDB's words (the store's tables cast them further on insert).
_DUCKDB_TYPES = {"string": "VARCHAR", "timestamp": "TIMESTAMP", "double": "DOUBLE",
                 "int": "INTEGER", "boolean": "BOOLEAN"}
# table -> (columns with their Spark types, the required ones)
_TABLES = {
    "events": (JOB_EVENT_COLUMNS, REQUIRED_EVENT_COLUMNS),
    "users": (TABLE_COLUMNS["users"], ("user_id",)),
    "items": (TABLE_COLUMNS["items"], ("item_id",)),
    "user_attributes": (TABLE_COLUMNS["user_attributes"], ("user_id", "name")),
    "labels": (LABEL_COLUMNS, tuple(LABEL_COLUMNS)),
}
_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://")
LAKE_BATCH = "lake"  # the batch_id of every loaded row (the store's tables require one)


class LakeError(ChurnguardError, ValueError):
    """A lake's table DuckDB cannot read as asked (a table name, a remote URI without httpfs,
    no files, a missing column), with what to do about it."""

    code = "lake_source"


@dataclass(frozen=True, kw_only=True)
class LakeTables:
    """Where a lake's tables are for DuckDB (Parquet paths or globs); only ``events`` is
    required. The same tables as :class:`churnguard.spark.LakeSources`."""

    events: str
    users: str | None = None
    items: str | None = None
    user_attributes: str | None = None
    labels: str | None = None


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def parquet_pattern(source: str) -> str:
    """What DuckDB's ``read_parquet`` is given for ``source``: a folder becomes every
    ``*.parquet`` below it (as Spark reads a folder); Hadoop's ``s3a://``/``s3n://`` are
    ``s3://`` to DuckDB's httpfs; a file or glob as it is."""
    match = _SCHEME.match(source)
    if match and match["scheme"].lower() in ("s3a", "s3n"):
        source = "s3://" + source[match.end():]
    elif match and match["scheme"].lower() == "file":
        source, match = source[match.end():], None
    if source.endswith("/") or (match is None and Path(source).is_dir()):
        return source.rstrip("/") + "/**/*.parquet"
    return source


def _check_source(con: duckdb.DuckDBPyConnection, source: str, option: str) -> None:
    """Refuse what DuckDB does not read here: table names, remote URIs without httpfs."""
    if not is_path(source):
        raise LakeError(
            f"{option} {source}: a table name is read through a Spark session's catalog, by "
            "--engine spark only; --engine duckdb reads Parquet files: give a file, a folder "
            "or a glob (/lake/events/*.parquet)")
    match = _SCHEME.match(source)
    if match is None or match["scheme"].lower() == "file":
        return
    installed = con.execute("SELECT installed FROM duckdb_extensions() WHERE extension_name "
                            "= 'httpfs'").fetchall()
    if not (installed and installed[0][0]):
        raise LakeError(
            f"{option} {source}: DuckDB reads {match['scheme']}:// URIs through its httpfs "
            "extension, which is not installed here, and churnguard downloads nothing at run "
            "time. Install it once (`python -c \"import duckdb; duckdb.install_extension("
            "'httpfs')\"`, with S3 credentials as a DuckDB secret), copy the files to a local "
            "folder, or use --engine spark")
    con.execute("LOAD httpfs")


def _load(store: Store, table: str, source: str) -> None:
    """Insert the Parquet at ``source`` into the store's ``table``: the Spark jobs' columns,
    cast to their types (missing optional ones NULL), timestamps read as UTC."""
    option = _option(table)
    columns, required = _TABLES[table]
    _check_source(store.con, source, option)
    pattern = parquet_pattern(source).replace("'", "''")
    scan = f"read_parquet('{pattern}', union_by_name = true, hive_partitioning = true)"
    try:
        present = {row[0] for row in store.con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
    except duckdb.Error as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LakeError(f"{option} {source}: cannot read it as Parquet files ({first})") from None
    missing = [c for c in required if c not in present]
    if missing:
        raise LakeError(f"{option} {source}: the {table.replace('_', ' ')} need columns "
                        f"{list(required)} (missing: {missing})")

    def column(name: str, kind: str) -> str:
        if name not in present:
            return f"NULL AS {name}"
        if kind == "timestamp":  # a zone-aware or text time becomes its UTC wall-clock time
            return f'CAST(CAST("{name}" AS TIMESTAMPTZ) AS TIMESTAMP) AS {name}'
        return f'CAST("{name}" AS {_DUCKDB_TYPES[kind]}) AS {name}'

    select = ", ".join(column(name, kind) for name, kind in columns.items())
    names = ", ".join(columns)
    try:
        store.con.execute(f"INSERT INTO {table} ({names}, batch_id) "
                          f"SELECT *, '{LAKE_BATCH}' FROM (SELECT {select} FROM {scan})")
    except duckdb.Error as err:  # a NULL key, a duplicate key, a value of the wrong type
        first = str(err).strip().splitlines()[0]
        raise LakeError(f"{option} {source}: cannot load it as the store's {table} table "
                        f"({first})") from None


@contextlib.contextmanager
def lake_store(tables: LakeTables) -> Iterator[Store]:
    """A temporary store (a file in a temporary folder, so DuckDB can spill a large lake to
    disk) holding the lake's tables; removed on exit."""
    with tempfile.TemporaryDirectory(prefix="churnguard-lake-") as folder:
        with Store.open(Path(folder) / "lake.duckdb") as store:
            # nothing is downloaded at run time (DuckDB would fetch httpfs for an s3:// path)
            store.con.execute("SET autoinstall_known_extensions = false")
            for table in _TABLES:
                source = getattr(tables, table)
                if source is not None:
                    _load(store, table, source)
            yield store


def _project_champion(project: Store) -> str:
    """The project's champion, refused for a model that reads event sequences (their encoders
    and caches are the project's), as on Spark; asked before the lake is read."""
    version, model = champion(project)
    if reads_sequences(model):
        raise LakeError(
            f"{version} is a {model.name} model: it reads customers' event sequences and the "
            "project's text encoders, which a lake does not carry; score it with `churnguard "
            "score` on the store (ingest the files), or make a model on features and order "
            "histories (gbdt, btyd, recency, or an ensemble of them) the champion",
            code="lake_model")
    return version


def _copy_model(project: Store, lake: Store, version: str) -> None:
    """Register ``version`` in the lake's store as its champion: the registry's row (settings,
    features, artifact byte for byte)."""
    row = project.con.execute("SELECT * FROM models WHERE version = ?", [version]).fetchall()
    lake.con.execute(f"INSERT INTO models VALUES ({', '.join('?' * len(row[0]))})", list(row[0]))
    set_alias(lake, CHAMPION, version, reason="copied from the project for a lake's scores")


def score_from_lake(project: Store, tables: LakeTables, *, definition: ChurnDefinition,
                    tiers: ScoringConfig, as_of: object = None, lang: str | None = None,
                    progress: Callable[[str], None] | None = None) -> ScoreResult:
    """Score the lake's population at ``as_of`` (default: just after its last event) with the
    project's champion, reasons included: :func:`churnguard.scoring.score_customers` on the
    lake's store. Nothing is written to the project's store."""
    say = progress or (lambda message: None)
    version = _project_champion(project)
    say("reading the lake")
    with lake_store(tables) as lake:
        _copy_model(project, lake, version)
        return score_customers(lake, definition=definition, tiers=tiers, as_of=as_of,
                               lang=lang, version=version, save=False, progress=say)


def features_from_lake(tables: LakeTables, *, definition: ChurnDefinition,
                       cutoffs: Sequence[object] | None = None) -> pd.DataFrame:
    """The training snapshot of the lake at ``cutoffs`` (default: just after its last event):
    :func:`churnguard.snapshots.snapshot_table` on the lake's store."""
    with lake_store(tables) as lake:
        chosen = list(cutoffs) if cutoffs else [resolve_as_of(lake, None)]
        return snapshot_table(lake, definition=definition, cutoffs=chosen)
