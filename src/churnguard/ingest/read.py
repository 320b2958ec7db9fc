"""Reading one input file (CSV, Parquet, JSON lines; optionally gzip/zstd) into a temp view with
a 1-based row number, and the messages for a file that cannot be read."""

from __future__ import annotations

import gzip
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from churnguard.ingest.encodings import (
    NATIVE,
    bom_encoding,
    decoded_previews,
    looks_gb18030,
    read_head,
    transcode,
)
from churnguard.ingest.results import IngestError, Problem
from churnguard.schema import quote_ident, quote_literal


# Columns a source view adds: the 1-based data row, and (JSON lines) the raw object.
_ROW = "__cg_row"
_JSON = "__cg_json"

_EXTENSIONS = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
}  # fmt: skip
_COMPRESSION_SUFFIXES = (".gz", ".zst")


@dataclass
class _Source:
    """A file made readable as a temp view with a 1-based row number column."""

    display: str
    path: Path
    fmt: str
    view: str
    columns: dict[str, str]  # the file's column name -> DuckDB type
    tables: list[str] = field(default_factory=list)  # temp objects to drop afterwards
    csv_dialect: tuple[str, str, str] | None = None  # delimiter, quote, escape (error path)
    # Temporary folders to delete afterwards (a transcoded copy of the file), and what to say.
    folders: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _drop(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop a temp table or view of ours (a failed DROP would abort the transaction)."""
    is_view = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name = ?", [name]
    ).fetchone()[0]
    con.execute(f"DROP {'VIEW' if is_view else 'TABLE'} IF EXISTS {name}")


def _detect_format(path: Path, fmt: str, display: str) -> str:
    if fmt != "auto":
        return fmt
    name = path.name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    found = _EXTENSIONS.get(Path(name).suffix)
    if found is None:
        raise IngestError(
            f"{display}: cannot tell the format from the file name; pass --format csv, "
            "--format parquet or --format jsonl"
        )
    return found


def _open_source(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    display: str,
    index: int,
    fmt: str,
    delimiter: str | None,
    encoding: str,
) -> _Source:
    if not path.exists():
        raise IngestError(f"{display}: no such file")
    if not path.is_file():
        raise IngestError(f"{display}: not a file")
    if path.stat().st_size == 0:
        raise IngestError(f"{display}: the file is empty (0 bytes); expected at least a header")
    fmt = _detect_format(path, fmt, display)
    view = f"__cg_src_{index}"
    raw = f"__cg_raw_{index}"
    source = _Source(display=display, path=path, fmt=fmt, view=view, columns={}, tables=[view])
    if delimiter is not None:
        source.csv_dialect = (delimiter, '"', '"')
    try:
        _describe(con, source, raw, delimiter, encoding)
    except BaseException:
        for folder in source.folders:  # a transcoded copy; the caller never sees this source
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return source


def _describe(con: duckdb.DuckDBPyConnection, source: _Source, raw: str, delimiter: str | None,
              encoding: str) -> None:
    """Create the source's view over its file and record the file's columns."""
    path, display, fmt, view = source.path, source.display, source.fmt, source.view
    literal = quote_literal(str(path))
    try:
        if fmt == "csv":
            source.tables.append(raw)
            _read_csv(con, source, raw, delimiter, _csv_encoding(source, encoding))
        elif fmt == "parquet":
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT file_row_number + 1 AS {_ROW}, "
                f"* EXCLUDE (file_row_number) FROM read_parquet({literal}, file_row_number = true)"
            )
        else:
            if encoding != "utf-8":
                raise IngestError(f"{display}: JSON files must be UTF-8; do not pass an encoding")
            reader = "read_ndjson_objects"
            extra = ""
            if read_head(path, 4096, display).lstrip()[:1] == b"[":
                reader, extra = "read_json_objects", ", format = 'array'"
            source.tables.append(raw)
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT row_number() OVER () AS {_ROW}, json AS {_JSON} "
                f"FROM {reader}({literal}, ignore_errors = true{extra})"
            )
            keys = [
                k
                for (k,) in con.execute(
                    f"SELECT k FROM (SELECT {_ROW} AS r, unnest(json_keys({_JSON})) AS k FROM {raw}) "
                    "GROUP BY k ORDER BY min(r), k"
                ).fetchall()
            ]
            fields = ", ".join(
                f"{_JSON} ->> {quote_literal('$.' + json.dumps(k))} AS {quote_ident(k)}"
                for k in keys
            )
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {_ROW}, {_JSON}"
                f"{', ' + fields if fields else ''} FROM {raw}"
            )
        described = con.execute(f"DESCRIBE {view}").fetchall()
    except duckdb.Error as exc:
        raise _read_error(exc, path, display, fmt, encoding) from exc
    source.columns = {name: type_ for name, type_, *_ in described if name not in (_ROW, _JSON)}


def _csv_encoding(source: _Source, encoding: str) -> str:
    """The encoding DuckDB reads ``source`` in: a file in an encoding it cannot decode (or with
    a UTF-16 byte order mark) is first transcoded to a temporary UTF-8 copy, which ``source``
    then points at (the display name stays the user's file)."""
    if encoding == "utf-8":
        # Looked at before DuckDB reads: a failed read aborts the call's transaction.
        encoding = bom_encoding(source.path, source.display) or (
            "gb18030" if looks_gb18030(source.path, source.display) else encoding)
    if encoding in NATIVE:
        return encoding
    copy = transcode(source.path, encoding, source.display)
    source.folders.append(copy.folder)
    source.path = copy.path
    source.notes.append(f"{source.display}: read as {encoding.upper()} text")
    return "utf-8"


def _read_csv(con: duckdb.DuckDBPyConnection, source: _Source, raw: str,
              delimiter: str | None, encoding: str) -> None:
    options = ["all_varchar = true", "header = true", f"encoding = {quote_literal(encoding)}"]
    if delimiter is not None:
        options.append(f"delim = {quote_literal(delimiter)}")
    # read_csv has no file_row_number; row_number() OVER () runs as a streaming window over the
    # scan in file order (insertion order is preserved), which tests check.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT row_number() OVER () AS {_ROW}, * "
        f"FROM read_csv({quote_literal(str(source.path))}, {', '.join(options)})"
    )
    con.execute(f"CREATE OR REPLACE TEMP VIEW {source.view} AS SELECT * FROM {raw}")


def _is_unicode_error(exc: duckdb.Error) -> bool:
    return "unicode" in str(exc).lower()


def _read_error(
    exc: duckdb.Error, path: Path, display: str, fmt: str, encoding: str
) -> IngestError:
    message = str(exc)
    if fmt == "csv" and _is_unicode_error(exc):
        line, detail, raw = _find_undecodable_line(path, encoding)
        where = f"line {line}" if line else "the file"
        # Never a blind suggestion: each encoding that decodes the line comes with how the line
        # then reads, so the user can see which one is the file's (latin-1 decodes anything).
        shown = "; ".join(
            f"encoding='{name}' (--encoding {name}) reads it as {_preview(text)}"
            for name, text in decoded_previews(raw or b"")
        )
        hint = (f"; name the encoding the file was saved in, after checking how {where} reads "
                f"in it: {shown}" if shown else
                "; name the encoding the file was saved in with --encoding")
        return IngestError(
            f"{display}: {where} is not valid {encoding.upper()} text{detail}{hint}",
            [Problem(display, None, None, f"not valid {encoding} text", line)],
        )
    first_line = message.splitlines()[0] if message else type(exc).__name__
    if fmt == "parquet":
        reason = f"cannot read it as Parquet (truncated or corrupt?): {first_line}"
    elif fmt == "csv":
        reason = f"cannot read it as CSV: {first_line}"
        more = [ln.strip() for ln in message.splitlines()[1:3] if ln.strip()]
        if more:
            reason += " (" + "; ".join(more) + ")"
    else:
        reason = f"cannot read it as JSON lines: {first_line}"
    return IngestError(f"{display}: {reason}", [Problem(display, None, None, reason)])


def _open_binary(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")  # noqa: SIM115


def _find_undecodable_line(path: Path, encoding: str) -> tuple[int | None, str, bytes | None]:
    """Error path only: the first line that does not decode, where in it, and its bytes."""
    with _open_binary(path) as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as err:
                return (number, f" (byte 0x{raw[err.start]:02x} at position {err.start + 1})",
                        raw.rstrip(b"\r\n"))
    return None, "", None


def _preview(text: str, limit: int = 80) -> str:
    """A line shown in a message: quoted, control characters escaped, cut short when long.

    >>> print(_preview("a,b" + chr(7)))
    'a,b\\x07'
    """
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
