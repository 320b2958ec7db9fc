"""The inbox: a folder where a shop drops export files for the next cycle to ingest, once each.

Layout (``[operate] inbox``, default ``<project>/inbox``)::

    inbox/events/…   inbox/users/…   inbox/items/…   inbox/campaigns/…   inbox/labels/…
    inbox/events-2026-03.csv        (top level: the kind is the start of the file's name)
    inbox/done/…                    (ingested files, moved here after their commit)
    inbox/rejected/…                (refused files, each with NAME.error.txt saying why)

The kind of a file is its (first) sub-folder's name; at the top level it is the word its name starts
with (``events``, ``users``, ``items``, ``campaigns``, ``labels``, or the singular), followed by
the end of the name or one of ``-_. ``. A file of no kind is refused with a note saying how to
name it. Names starting with ``.`` or ending in ``.tmp``/``.part`` are files still being written
and wait; write a file under such a name and rename it when complete.

*Exactly once, by content.* A file is known by the sha256 of its bytes. Its ``inbox_files`` row
is written by :func:`ingest_one` inside the transaction of its ingest batch, so after any crash
the file is either ingested and recorded, or neither: a rerun never loads it twice and never
loses it. The same bytes under another name are a duplicate, moved to ``done/`` without loading.
A refused file (bad rows under ``on_error = "reject"``, no kind, an unreadable format) is
recorded as ``rejected`` with the error and moved to ``rejected/`` with a note: it is not
retried, and the same bytes dropped again are refused at once, citing the first refusal. A
corrected file has other bytes and goes in as new.

>>> from pathlib import PurePosixPath as P
>>> [kind_of(P(n)) for n in ("events/export.csv", "users-2026.parquet", "event_log.jsonl",
...                          "eventsmore.csv", "Items.CSV", "orders.csv")]
['events', 'users', 'events', None, 'items', None]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import duckdb

from churnguard.config import IngestConfig
from churnguard.errors import ChurnguardError
from churnguard.ingest import IngestReport, ingest_files
from churnguard.schema import KINDS
from churnguard.store import Store

# The order a cycle ingests kinds in: what events and campaigns refer to comes first.
KIND_ORDER = ("items", "users", "events", "campaigns", "labels")
DONE_FOLDER, REJECTED_FOLDER = "done", "rejected"
WAITING_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
INGESTED, REJECTED = "ingested", "rejected"
_NAMED = re.compile(r"^(?P<word>[a-z]+?)s?(?:$|[-_. ])")
_READ_CHUNK = 1 << 20

assert set(KIND_ORDER) == set(KINDS)


def kind_of(relative: PurePosixPath) -> str | None:
    """The kind of a file at ``relative`` (a path under the inbox), or None (module docstring)."""
    if len(relative.parts) > 1:
        folder = relative.parts[0].lower()
        return folder if folder in KINDS else None
    match = _NAMED.match(relative.name.lower())
    if match is None:
        return None
    word = match.group("word")
    return next((k for k in KINDS if k in (word, word + "s")), None)


def content_hash(path: Path) -> str:
    """sha256 hex of the file's bytes (read in chunks)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_READ_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, kw_only=True)
class InboxFile:
    path: Path
    name: str  # relative to the inbox, with '/'
    kind: str | None
    size: int
    content_hash: str


def _complete_files(inbox: Path) -> list[tuple[Path, PurePosixPath]]:
    """(path, path under the inbox) of every complete file the next cycle will look at."""
    if not inbox.is_dir():
        return []
    found = []
    for path in inbox.rglob("*"):
        relative = PurePosixPath(path.relative_to(inbox).as_posix())
        if not path.is_file() or relative.parts[0] in (DONE_FOLDER, REJECTED_FOLDER):
            continue
        if any(part.startswith(".") for part in relative.parts) \
                or path.name.lower().endswith(WAITING_SUFFIXES):
            continue
        found.append((path, relative))
    return found


def _in_cycle_order(files: list[InboxFile]) -> list[InboxFile]:
    rank = {k: i for i, k in enumerate(KIND_ORDER)}
    return sorted(files, key=lambda f: (rank.get(f.kind or "", len(rank)), f.name))


def scan(inbox: Path) -> list[InboxFile]:
    """The files waiting in the inbox (every folder but done/ and rejected/: a file in a
    folder that names no kind is refused, not left unseen), complete files only, in
    :data:`KIND_ORDER` then by name."""
    return _in_cycle_order([
        InboxFile(path=path, name=str(relative), kind=kind_of(relative),
                  size=path.stat().st_size, content_hash=content_hash(path))
        for path, relative in _complete_files(inbox)])


def waiting(inbox: Path) -> list[InboxFile]:
    """What :func:`scan` finds, without reading the files (``content_hash`` is empty): the
    dashboard lists the inbox on every view, and hashing gigabytes for that is not worth it."""
    return _in_cycle_order([
        InboxFile(path=path, name=str(relative), kind=kind_of(relative),
                  size=path.stat().st_size, content_hash="")
        for path, relative in _complete_files(inbox)])


def folder_of(root: Path, setting: str) -> Path:
    """The inbox folder: ``[operate] inbox`` (``setting``) under the project folder ``root``.

    >>> folder_of(Path("/shop"), "inbox").as_posix()
    '/shop/inbox'
    """
    return (root / setting).resolve()


@dataclass(frozen=True, kw_only=True)
class Known:
    """The record of a content hash seen before."""

    name: str
    status: str
    cycle_id: str | None
    error: str | None


def known(store: Store, hashes: list[str]) -> dict[str, Known]:
    if not hashes:
        return {}
    rows = store.con.execute(
        "SELECT content_hash, name, status, cycle_id, error FROM inbox_files "
        "WHERE content_hash IN (SELECT unnest(?::VARCHAR[]))", [hashes]).fetchall()
    return {h: Known(name=n, status=s, cycle_id=c, error=e) for h, n, s, c, e in rows}


@dataclass(frozen=True, kw_only=True)
class Seen:
    """A file a cycle has dealt with (a row of ``inbox_files``)."""

    name: str
    kind: str | None
    size_bytes: int
    status: str  # ingested, rejected
    batch_id: str | None
    cycle_id: str | None
    error: str | None
    seen_at: dt.datetime


def seen_files(store: Store, *, limit: int = 50, status: str | None = None) -> list[Seen]:
    """The files cycles have ingested or rejected, newest first (only ``status`` when given;
    none in a store opened read-only before its schema had the table)."""
    (exists,) = store.con.execute("SELECT count(*) FROM information_schema.tables "
                                  "WHERE table_name = 'inbox_files'").fetchall()[0]
    if not exists:
        return []
    where, args = ("WHERE status = ?", [status]) if status else ("", [])
    rows = store.con.execute(
        "SELECT name, kind, size_bytes, status, batch_id, cycle_id, error, seen_at "
        f"FROM inbox_files {where} ORDER BY seen_at DESC, name LIMIT ?",
        [*args, int(limit)]).fetchall()
    return [Seen(name=n, kind=k, size_bytes=size, status=st, batch_id=b, cycle_id=c, error=e,
                 seen_at=at) for n, k, size, st, b, c, e, at in rows]


def _record(con: duckdb.DuckDBPyConnection, f: InboxFile, *, status: str, cycle_id: str,
            batch_id: str | None = None, error: str | None = None) -> None:
    con.execute(
        "INSERT INTO inbox_files (content_hash, name, kind, size_bytes, status, batch_id, "
        "cycle_id, error, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [f.content_hash, f.name, f.kind, f.size, status, batch_id, cycle_id, error,
         dt.datetime.now(dt.UTC).replace(tzinfo=None)])


def file_away(inbox: Path, f: InboxFile, folder: str, note: str | None = None) -> Path:
    """Move ``f`` under ``inbox/folder`` keeping its relative path (a name already there gets
    the hash's first 12 characters in front); with ``note``, write NAME.error.txt beside it."""
    target = inbox / folder / f.name
    if target.exists():
        target = target.with_name(f"{f.content_hash[:12]}-{target.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if f.path.exists():
        shutil.move(str(f.path), target)
    if note is not None:
        target.with_name(target.name + ".error.txt").write_text(note + "\n", encoding="utf-8")
    return target


@dataclass(frozen=True, kw_only=True)
class Ingested:
    """One file's fate: ``status`` ingested or rejected, its report or its error."""

    file: InboxFile
    status: str
    report: IngestReport | None = None
    error: str | None = None

    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file.name, "kind": self.file.kind,
                               "sha256": self.file.content_hash[:16]}
        if self.report is not None:
            r = self.report
            out.update(batch_id=r.batch_id if r.rows_read else None, rows_read=r.rows_read,
                       rows_added=r.rows_added, rows_updated=r.rows_updated,
                       rows_duplicate=r.rows_duplicate, rows_bad=r.rows_bad)
        if self.error is not None:
            out["error"] = self.error
        return out


def ingest_one(store: Store, f: InboxFile, *, cycle_id: str, config: IngestConfig,
               on_error: str, in_transaction: Callable[[], None] | None = None,
               progress: Callable[[str], None] | None = None) -> Ingested:
    """Ingest one inbox file and record it in the same transaction; a refusal (bad input) is
    recorded as rejected, in a transaction of its own after the ingest rolled back.
    ``in_transaction`` runs inside the ingest transaction after the record (fault points)."""
    if f.kind is None:
        error = (f"cannot tell what {f.name} holds: put it in a kind folder "
                 f"({', '.join(k + '/' for k in KIND_ORDER)}) or start its name with the kind, "
                 "e.g. events-2026-03.csv")
        return _reject(store, f, cycle_id=cycle_id, error=error)

    def record(con: duckdb.DuckDBPyConnection, batch_id: str | None) -> None:
        _record(con, f, status=INGESTED, cycle_id=cycle_id, batch_id=batch_id)
        if in_transaction is not None:
            in_transaction()

    try:
        report = ingest_files(store, kind=f.kind, files=[f.path], on_error=on_error,
                              config=config, progress=progress, before_commit=record)
    except ChurnguardError as exc:
        if not exc.bad_input:
            raise
        return _reject(store, f, cycle_id=cycle_id, error=str(exc))
    return Ingested(file=f, status=INGESTED, report=report)


def _reject(store: Store, f: InboxFile, *, cycle_id: str, error: str) -> Ingested:
    with store.transaction() as con:
        _record(con, f, status=REJECTED, cycle_id=cycle_id, error=error)
    return Ingested(file=f, status=REJECTED, error=error)


__all__ = ["DONE_FOLDER", "INGESTED", "KIND_ORDER", "REJECTED", "REJECTED_FOLDER", "InboxFile",
           "Ingested", "Known", "Seen", "content_hash", "file_away", "folder_of", "ingest_one",
           "kind_of", "known", "scan", "seen_files", "waiting"]
