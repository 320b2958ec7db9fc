"""Per-cutoff token caches built in DuckDB and kept on disk as memory-mapped ``.npy`` files.

For a cutoff T, :meth:`SequenceCache.at` holds every customer with events strictly before T: the
newest ``max_len`` of those events as tokens (:mod:`churnguard.sequences.tokens`), oldest first.
One SQL statement does the point-in-time cut, the time gaps (over the whole history, so the first
kept event still knows how long before it the previous one was), the newest-N ranking and the
per-customer counts; Python only maps the few distinct strings (types, categories, texts) to
codes and vectors.

The cache folder's name carries a key of the store's events (their count, ingest batch ids and
time span), the cutoff and N, so a cache built before an ingest or an erasure is never read again;
building a new one removes the stale ones of the same cutoff. The files are written to a
temporary folder and renamed into place, so a crash leaves no half cache.

>>> import pandas as pd
>>> from churnguard.store import Store
>>> store = Store.in_memory()
>>> events = pd.DataFrame({"event_id": ["e1", "e2", "e3"], "user_id": "u1", "batch_id": "b",
...                        "ts": pd.to_datetime(["2025-01-05", "2025-01-20", "2025-03-01"]),
...                        "type": ["order", "view", "order"], "amount": [10.0, None, 7.0]})
>>> with store.registered(events, "events") as view:
...     _ = store.con.execute(f"INSERT INTO events BY NAME SELECT * FROM {view}")
>>> cut = SequenceCache(store).at("2025-02-01", texts=False)
>>> cut.users.tolist(), cut.sequences.lengths.tolist()
(['u1'], [2])
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churnguard.cutoffs import to_cutoff
from churnguard.sequences.batch import EventSequences, gather
from churnguard.sequences.tokens import (
    TEXT_DIM,
    TEXT_TYPES,
    amount_codes,
    category_codes,
    project_texts,
    project_vectors,
    type_codes,
)
from churnguard.store import Store
from churnguard.text.bilingual import TextEncoder, shop_text_encoder

__all__ = ["CACHE_FORMAT", "CutoffSequences", "SequenceCache", "sequences_of"]

CACHE_FORMAT = 1
DEFAULT_MAX_LEN = 256
_ARRAYS = ("users", "offsets", "cat", "num", "text", "text_vectors", "context")
_STRINGS = "text_strings"  # read only when asked for; caches before 2026-11-29 lack them


@dataclass(frozen=True, kw_only=True)
class CutoffSequences:
    """Every customer's newest events before ``cutoff``; ``users`` sorted, aligned with
    ``sequences``. ``path`` is the cache folder (None for an in-memory store)."""

    cutoff: dt.datetime
    key: str
    users: np.ndarray
    sequences: EventSequences
    path: Path | None = None

    def rows_of(self, user_ids: np.ndarray) -> np.ndarray:
        """Row of each user id in this cache, -1 for users without events before the cutoff."""
        user_ids = np.asarray(user_ids, dtype=str)
        if len(self.users) == 0:
            return np.full(len(user_ids), -1, dtype=np.int64)
        at = np.searchsorted(self.users, user_ids)
        at = np.minimum(at, len(self.users) - 1)
        return np.where(self.users[at] == user_ids, at, -1).astype(np.int64)


_SQL = """
WITH ev AS (
    SELECT user_id, ts, event_id, type, category, amount, rating,
           CASE WHEN type IN ({text_types}) THEN text END AS text
    FROM events WHERE ts < $cutoff
), ranked AS (
    SELECT *,
           epoch(ts) - epoch(lag(ts) OVER (PARTITION BY user_id ORDER BY ts, event_id))
               AS gap_s,
           row_number() OVER (PARTITION BY user_id ORDER BY ts DESC, event_id DESC) AS back,
           count(*) OVER (PARTITION BY user_id) AS n_total,
           min(ts) OVER (PARTITION BY user_id) AS first_ts
    FROM ev
)
SELECT user_id, type, category, amount, rating, text,
       hour(ts)::TINYINT AS hour, isodow(ts)::TINYINT AS weekday,
       gap_s, (epoch($cutoff) - epoch(ts)) / 86400.0 AS age_days, n_total,
       (epoch($cutoff) - epoch(first_ts)) / 86400.0 AS first_age_days
FROM ranked WHERE back <= $max_len
ORDER BY user_id, ts, event_id
"""


def _codes(column: pa.ChunkedArray, mapper: Callable[[list], np.ndarray],
           absent: int) -> np.ndarray:
    """Map a string column through ``mapper`` once per distinct value (nulls: ``absent``)."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    values = mapper(encoded.dictionary.to_pylist())
    index = encoded.indices.to_numpy(zero_copy_only=False)
    valid = np.asarray(encoded.is_valid())
    out = np.full(len(encoded), absent, dtype=values.dtype if len(values) else np.uint8)
    if len(values):
        out[valid] = values[index[valid].astype(np.int64)]
    return out


_TEXT_MEMO: dict[str, np.ndarray] = {}


def _text_vectors(texts: list[str], encoder: TextEncoder | None = None) -> np.ndarray:
    """Projected vectors of ``texts``: MiniLM's, each distinct text encoded once per process,
    and for the texts ``encoder`` reads as Chinese (if given) its Chinese encoder's."""
    zh = np.zeros(len(texts), bool) if encoder is None else encoder.chinese(texts)
    english = [t for t, z in zip(texts, zh) if not z]
    missing = [t for t in dict.fromkeys(english) if t not in _TEXT_MEMO]
    if missing:
        for text, vector in zip(missing, project_texts(missing)):
            _TEXT_MEMO[text] = vector
    out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
    if english:
        out[~zh] = np.stack([_TEXT_MEMO[t] for t in english])
    if zh.any():
        out[zh] = project_vectors(encoder.encode_chinese([t for t, z in zip(texts, zh) if z]))
    return out


def build_cutoff(store: Store, cutoff: dt.datetime, *, max_len: int, texts: bool,
                 key: str = "", encoder: TextEncoder | None = None) -> CutoffSequences:
    """Run the query for one cutoff and turn its rows into tokens (in memory). ``encoder``:
    the store's text encoder (None: MiniLM for every text)."""
    # con.sql(...).to_arrow_table() streams straight to Arrow; execute() would copy the rows.
    table = store.con.sql(
        _SQL.format(text_types=", ".join(f"'{t}'" for t in TEXT_TYPES)),
        params={"cutoff": cutoff, "max_len": int(max_len)},
    ).to_arrow_table()
    n_events = table.num_rows
    users_enc = pc.dictionary_encode(table["user_id"]).combine_chunks()
    user_index = users_enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    users = np.asarray(users_enc.dictionary.to_pylist(), dtype=str)
    offsets = np.searchsorted(user_index, np.arange(len(users) + 1)).astype(np.int64)
    first_rows = offsets[:-1]

    rating = table["rating"].to_numpy(zero_copy_only=False)
    rating = np.nan_to_num(np.asarray(rating, dtype=float), nan=0.0)
    cat = np.stack([
        _codes(table["type"], lambda v: type_codes(v), 1),
        _codes(table["category"], lambda v: category_codes(v), 1),
        amount_codes(np.asarray(table["amount"].to_numpy(zero_copy_only=False), dtype=float)),
        1 + table["hour"].to_numpy().astype(np.uint8),
        table["weekday"].to_numpy().astype(np.uint8),
        np.where((rating >= 1) & (rating <= 5), 1 + rating, 1).astype(np.uint8),
    ], axis=1).astype(np.uint8) if n_events else np.zeros((0, 6), dtype=np.uint8)

    gap = np.asarray(table["gap_s"].to_numpy(zero_copy_only=False), dtype=float)
    first_event = ~np.isfinite(gap)
    num = np.stack([
        np.log1p(np.where(first_event, 0.0, np.maximum(gap, 0.0)) / 3600.0),
        np.log1p(np.maximum(np.asarray(table["age_days"].to_numpy(), dtype=float), 0.0)),
        first_event.astype(float),
    ], axis=1).astype(np.float16) if n_events else np.zeros((0, 3), dtype=np.float16)

    text_vectors = np.zeros((0, TEXT_DIM), dtype=np.float32)
    text_strings = np.zeros(0, dtype=object) if texts else None
    text = np.full(n_events, -1, dtype=np.int32)
    if texts and n_events:
        encoded = pc.dictionary_encode(table["text"]).combine_chunks()
        distinct = encoded.dictionary.to_pylist()
        if distinct:
            text_vectors = _text_vectors(distinct, encoder)
            text_strings = np.asarray(distinct, dtype=object)
            valid = np.asarray(encoded.is_valid())
            text[valid] = encoded.indices.to_numpy(zero_copy_only=False)[valid]

    context = np.zeros((len(users), 2), dtype=np.float32)
    if len(users):
        context[:, 0] = np.log1p(table["n_total"].to_numpy()[first_rows].astype(float))
        context[:, 1] = np.log1p(np.maximum(
            table["first_age_days"].to_numpy()[first_rows].astype(float), 0.0))
    return CutoffSequences(
        cutoff=cutoff, key=key, users=users,
        sequences=EventSequences(offsets=offsets, cat=cat, num=num, text=text,
                                 text_vectors=text_vectors, context=context,
                                 text_strings=text_strings))


def _save(cut: CutoffSequences, folder: Path) -> None:
    tmp = folder.with_name(f"{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    arrays = {"users": cut.users, **{n: getattr(cut.sequences, n) for n in _ARRAYS[1:]}}
    if cut.sequences.text_strings is not None:
        # UTF-8 back to back plus offsets: real reviews vary in length, and a fixed-width
        # string array would pad every text to the longest.
        encoded = [str(t).encode() for t in cut.sequences.text_strings]
        arrays[f"{_STRINGS}_offsets"] = np.concatenate(
            [[0], np.cumsum([len(b) for b in encoded], dtype=np.int64)]).astype(np.int64)
        arrays[f"{_STRINGS}_utf8"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    for name, array in arrays.items():
        np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
    (tmp / "meta.json").write_text(json.dumps({
        "format": CACHE_FORMAT, "cutoff": cut.cutoff.isoformat(), "key": cut.key,
        "users": int(len(cut.users)), "events": int(cut.sequences.offsets[-1])}))
    try:
        os.replace(tmp, folder)
    except OSError:  # another process built the same cache first; theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)


def _has_strings(folder: Path) -> bool:
    # Caches written before the texts were kept have their vectors only.
    return (folder / f"{_STRINGS}_utf8.npy").exists()


def _load(folder: Path, cutoff: dt.datetime, key: str, *, strings: bool = False
          ) -> CutoffSequences:
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
              for name in _ARRAYS}
    users = np.asarray(arrays.pop("users"))
    if strings and _has_strings(folder):
        utf8 = np.load(folder / f"{_STRINGS}_utf8.npy", allow_pickle=False).tobytes()
        ends = np.load(folder / f"{_STRINGS}_offsets.npy", allow_pickle=False)
        arrays[_STRINGS] = np.asarray([utf8[a:b].decode() for a, b in zip(ends[:-1], ends[1:])],
                                      dtype=object)
    return CutoffSequences(cutoff=cutoff, key=key, users=users,
                           sequences=EventSequences(**arrays), path=folder)


class SequenceCache:
    """Token caches of one store, one per cutoff, built on first use.

    ``root``: the cache folder (default: ``.churnguard-cache/sequences`` next to a file store;
    an in-memory store keeps its caches in memory). ``max_len``: events kept per customer (N).
    ``texts`` (of :meth:`at` and :meth:`for_rows`): embed review and ticket texts with the
    store's text encoder (:func:`churnguard.text.shop_text_encoder`: MiniLM, and for mostly
    Chinese texts the shop's own encoder once it is fitted; False leaves the text vectors empty:
    faster, for tests and stores without text); the two kinds are cached apart, and a cache with
    texts is keyed by the encoder too. ``strings``: the caller needs the texts themselves as
    well (a model that fine-tunes the text encoder); a cache written before they were kept is
    rebuilt once.
    """

    def __init__(self, store: Store, *, max_len: int = DEFAULT_MAX_LEN,
                 root: str | Path | None = None) -> None:
        self.store = store
        self.max_len = max_len
        if root is None and store.path is not None:
            root = Path(store.path).parent / ".churnguard-cache" / "sequences"
        self.root = None if root is None else Path(root)
        self._memory: dict[tuple[dt.datetime, bool], CutoffSequences] = {}
        self._encoder: TextEncoder | None = None

    def text_encoder(self) -> TextEncoder:
        """The store's text encoder (fitted and stored on first need, see
        :func:`~churnguard.text.shop_text_encoder`)."""
        held = getattr(self, "_encoder", None)  # caches pickled before it existed lack it
        if held is None or held.zh is None:  # a fitted one stays
            held = self._encoder = shop_text_encoder(self.store)
        return held

    def events_store(self) -> Store:
        """The store holding the snapshot rows' events, for a model that reads events itself
        (the text columns of ``gbdt+text``): a copy that loads its events on first use (the
        real-time path's) loads them before answering."""
        return self.store

    def key(self, cutoff: object, *, texts: bool = True) -> str:
        """Key of the cache at ``cutoff``: changes whenever the store's events change (or, with
        texts, its text encoder)."""
        count, batches, first, last = self.store.con.execute(
            "SELECT count(*), list_sort(list(DISTINCT batch_id)), min(ts), max(ts) FROM events"
        ).fetchall()[0]
        parts = [CACHE_FORMAT, count, batches, str(first), str(last),
                 to_cutoff(cutoff).isoformat(), self.max_len, texts]
        if texts and (encoder := self.text_encoder().key) != "minilm":
            parts.append(encoder)  # MiniLM alone keeps the keys caches had before
        stamp = json.dumps(parts)
        return hashlib.sha1(stamp.encode()).hexdigest()[:16]

    def _folder_prefix(self, cutoff: dt.datetime, texts: bool) -> str:
        return f"{cutoff:%Y%m%dT%H%M%S}-n{self.max_len}-{'t' if texts else 'x'}-"

    def at(self, cutoff: object, *, texts: bool = True, strings: bool = False
           ) -> CutoffSequences:
        """Every customer's tokens before ``cutoff``: from the cache, or built and cached."""
        when = to_cutoff(cutoff)
        if self.store is None:
            raise ValueError("this SequenceCache was copied without its store; attach a new "
                             "one with SequenceCache(store)")
        if strings and not texts:
            raise ValueError("SequenceCache.at(strings=True) needs texts=True")
        key = self.key(when, texts=texts)
        held = self._memory.get((when, texts))
        if held is not None and held.key == key and not (
                strings and held.sequences.text_strings is None):
            return held
        encoder = self.text_encoder() if texts else None
        if self.root is None:
            cut = build_cutoff(self.store, when, max_len=self.max_len, texts=texts, key=key,
                               encoder=encoder)
        else:
            prefix = self._folder_prefix(when, texts)
            folder = self.root / f"{prefix}{key}"
            if strings and (folder / "meta.json").exists() and not _has_strings(folder):
                shutil.rmtree(folder, ignore_errors=True)  # older format: rebuilt below
            if not (folder / "meta.json").exists():
                self.root.mkdir(parents=True, exist_ok=True)
                for stale in self.root.glob(f"{prefix}*"):
                    shutil.rmtree(stale, ignore_errors=True)
                _save(build_cutoff(self.store, when, max_len=self.max_len, texts=texts,
                                   key=key, encoder=encoder), folder)
            cut = _load(folder, when, key, strings=strings)
        self._memory[(when, texts)] = cut
        return cut

    def for_rows(self, index: pd.MultiIndex, *, texts: bool = True, strings: bool = False
                 ) -> EventSequences:
        """Sequences of the (user_id, cutoff) rows of ``index``, in its order (users without
        events before their cutoff get an empty sequence). One copy of the rows' events, read
        straight from the memory-mapped caches; ``strings`` as in :meth:`at`."""
        users = np.asarray(index.get_level_values(0).astype(str), dtype=str)
        cutoffs = pd.DatetimeIndex(index.get_level_values(1))
        sources: list[EventSequences] = []
        source = np.zeros(len(index), dtype=np.int64)
        rows = np.full(len(index), -1, dtype=np.int64)
        for k, cutoff in enumerate(sorted(cutoffs.unique())):
            at = np.flatnonzero(cutoffs == cutoff)
            cut = self.at(pd.Timestamp(cutoff).to_pydatetime(), texts=texts, strings=strings)
            sources.append(cut.sequences)
            source[at], rows[at] = k, cut.rows_of(users[at])
        return gather(sources, source, rows)

    def __getstate__(self) -> dict:
        # A copy (e.g. of a snapshot's meta) keeps the folder, not the store connection.
        return {**self.__dict__, "store": None, "_memory": {}, "_encoder": None}


def sequences_of(snapshot, *, max_len: int | None = None,  # noqa: ANN001
                 texts: bool = True, strings: bool = False) -> EventSequences:
    """The event sequences of a snapshot's rows, through the cache its builder attached
    (``strings``: with the texts themselves, see :class:`SequenceCache`)."""
    cache = snapshot.meta.get("sequences")
    if cache is None:
        raise ValueError(
            "this snapshot carries no event sequences (meta['sequences']); build it with "
            "churnguard.snapshots.build_snapshot, or attach one with "
            "snapshot.meta['sequences'] = SequenceCache(store)")
    if max_len is not None and max_len > cache.max_len:
        raise ValueError(f"the model reads {max_len} events per customer but the snapshot's "
                         f"cache keeps {cache.max_len}; build it with a larger max_len")
    return cache.for_rows(snapshot.index, texts=texts, strings=strings)
