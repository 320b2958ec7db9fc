"""Token caches: point-in-time cut, newest N, tokens, reuse and invalidation, rows lookup."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.sequences import cache as cache_module
from churnguard.sequences.cache import SequenceCache, sequences_of
from churnguard.sequences.tokens import EVENT_TYPES, TEXT_DIM
from churnguard.store import Store

CUTOFF = dt.datetime(2025, 3, 1)
TYPE = {t: 2 + i for i, t in enumerate(EVENT_TYPES)}


def insert(store: Store, rows: list[tuple], batch: str = "b1") -> None:
    """rows: (event_id, user_id, ts, type, amount, text, rating)."""
    for event_id, user, ts, kind, amount, text, rating in rows:
        store.con.execute(
            "INSERT INTO events (event_id, user_id, ts, type, amount, text, rating, batch_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [event_id, user, ts, kind, amount, text, rating,
                                                batch])


@pytest.fixture
def shop(tmp_path: Path):
    with Store.open(tmp_path / "churnguard.duckdb", threads=1) as store:
        insert(store, [
            ("a1", "alice", "2025-01-01 10:00", "view", None, None, None),
            ("a2", "alice", "2025-01-01 12:00", "order", 30.0, None, None),
            ("a3", "alice", "2025-02-10 08:00", "review", None, "late parcel", 2),
            ("a4", "alice", "2025-02-20 09:00", "support_ticket", None, "where is it?", None),
            ("b1", "bob", "2025-02-27 23:00", "teleport", None, None, None),
            ("c1", "carol", "2025-03-05", "order", 5.0, None, None),  # only after the cutoff
        ])
        yield store


def test_only_events_strictly_before_the_cutoff_in_order(shop):
    cut = SequenceCache(shop).at(CUTOFF, texts=False)
    assert cut.users.tolist() == ["alice", "bob"]
    seqs = cut.sequences
    assert seqs.lengths.tolist() == [4, 1]
    assert seqs.cat[:4, 0].tolist() == [TYPE["view"], TYPE["order"], TYPE["review"],
                                        TYPE["support_ticket"]]
    assert seqs.cat[4, 0] == 1  # an unknown type is "other"
    # hour + 1, ISO weekday (2025-01-01 is a Wednesday), rating + 1 (absent: 1)
    assert seqs.cat[0, 3] == 11 and seqs.cat[0, 4] == 3
    assert seqs.cat[:4, 5].tolist() == [1, 1, 3, 1]
    # first event: flag set, gap 0; second: 2 hours later
    assert seqs.num[0, 2] == 1 and seqs.num[0, 0] == 0
    assert float(seqs.num[1, 0]) == pytest.approx(np.log1p(2.0), rel=1e-3)
    # age of bob's event: 25 hours before the cutoff (February 2025 has 28 days)
    assert float(seqs.num[4, 1]) == pytest.approx(np.log1p(25 / 24), rel=1e-3)
    # context: log1p(number of events), log1p(days since the first event)
    assert seqs.context[0, 0] == pytest.approx(np.log1p(4))
    assert seqs.context[0, 1] == pytest.approx(np.log1p((CUTOFF - dt.datetime(2025, 1, 1, 10))
                                                        .total_seconds() / 86400))


def test_no_look_ahead_events_at_or_after_the_cutoff_change_nothing(shop, tmp_path):
    before = SequenceCache(shop, root=tmp_path / "c1").at(CUTOFF, texts=False)
    insert(shop, [("x1", "alice", "2025-03-01 00:00", "order", 99.0, None, None),
                  ("x2", "bob", "2025-06-01", "order", 1.0, None, None),
                  ("x3", "dave", "2025-03-01", "view", None, None, None)], batch="b2")
    after = SequenceCache(shop, root=tmp_path / "c2").at(CUTOFF, texts=False)
    assert before.key != after.key  # a new cache was built ...
    assert after.users.tolist() == before.users.tolist()  # ... with the very same content
    for name in ("offsets", "cat", "num", "text", "context"):
        np.testing.assert_array_equal(getattr(after.sequences, name),
                                      getattr(before.sequences, name))


def test_keeps_the_newest_max_len_events_but_gaps_see_the_whole_history(shop):
    seqs = SequenceCache(shop, max_len=2).at(CUTOFF, texts=False).sequences
    assert seqs.lengths.tolist() == [2, 1]
    assert seqs.cat[:2, 0].tolist() == [TYPE["review"], TYPE["support_ticket"]]
    assert seqs.num[0, 2] == 0  # the review had a predecessor (the order)
    assert seqs.context[0, 0] == pytest.approx(np.log1p(4))  # all four events counted


def test_cache_is_memory_mapped_and_reused_until_the_events_change(shop, monkeypatch):
    calls = []
    real = cache_module.build_cutoff
    monkeypatch.setattr(cache_module, "build_cutoff",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = SequenceCache(shop)
    first = cache.at(CUTOFF, texts=False)
    assert first.path is not None and first.path.parent == shop.path.parent / \
        ".churnguard-cache" / "sequences"
    assert isinstance(first.sequences.cat, np.memmap)
    SequenceCache(shop).at(CUTOFF, texts=False)  # a new process would find the files
    assert len(calls) == 1
    insert(shop, [("d1", "dave", "2025-02-01", "view", None, None, None)], batch="b2")
    second = SequenceCache(shop).at(CUTOFF, texts=False)
    assert len(calls) == 2 and second.key != first.key
    assert "dave" in second.users.tolist()
    assert not first.path.exists()  # the stale cache of that cutoff is gone
    other = cache.at(dt.datetime(2025, 2, 1), texts=False)  # other cutoffs are separate
    assert other.path != second.path and second.path.exists()


def test_in_memory_store_keeps_caches_in_memory():
    store = Store.in_memory()
    insert(store, [("e1", "u1", "2025-01-05", "order", 10.0, None, None)])
    cut = SequenceCache(store).at(CUTOFF, texts=False)
    assert cut.path is None and cut.users.tolist() == ["u1"]


def test_text_vectors_for_reviews_and_tickets_only(shop, monkeypatch):
    monkeypatch.setattr(cache_module, "project_texts",
                        lambda texts: np.stack([np.full(TEXT_DIM, len(t), np.float32)
                                                for t in texts]))
    monkeypatch.setattr(cache_module, "_TEXT_MEMO", {})
    seqs = SequenceCache(shop).at(CUTOFF, texts=True).sequences
    assert (seqs.text[:5] >= 0).tolist() == [False, False, True, True, False]
    assert seqs.text_vectors[seqs.text[2], 0] == len("late parcel")
    assert seqs.text_vectors[seqs.text[3], 0] == len("where is it?")


def test_for_rows_follows_the_index_and_gives_unknown_users_nothing(shop):
    cache = SequenceCache(shop)
    index = pd.MultiIndex.from_tuples(
        [("bob", pd.Timestamp(CUTOFF)), ("zed", pd.Timestamp(CUTOFF)),
         ("alice", pd.Timestamp("2025-02-01")), ("alice", pd.Timestamp(CUTOFF))],
        names=["user_id", "cutoff"])
    seqs = cache.for_rows(index, texts=False)
    assert seqs.lengths.tolist() == [1, 0, 2, 4]
    assert seqs.context[1].tolist() == [0.0, 0.0]


def test_for_rows_copies_each_rows_events_and_context_from_its_cutoffs_cache(shop):
    cache = SequenceCache(shop)
    index = pd.MultiIndex.from_tuples(
        [("alice", pd.Timestamp(CUTOFF)), ("zed", pd.Timestamp(CUTOFF)),
         ("alice", pd.Timestamp("2025-02-01")), ("bob", pd.Timestamp(CUTOFF))],
        names=["user_id", "cutoff"])
    seqs = cache.for_rows(index, texts=True)
    now, before = cache.at(CUTOFF).sequences, cache.at("2025-02-01").sequences
    bounds = seqs.offsets
    np.testing.assert_array_equal(seqs.cat[bounds[0]:bounds[1]], now.cat[0:4])  # alice, now
    np.testing.assert_array_equal(seqs.cat[bounds[2]:bounds[3]], before.cat[0:2])
    np.testing.assert_array_equal(seqs.cat[bounds[3]:bounds[4]], now.cat[4:5])  # bob
    np.testing.assert_array_equal(seqs.context[[0, 2, 3]],
                                  [now.context[0], before.context[0], now.context[1]])
    # alice's review and ticket still point at their own texts in the merged table
    np.testing.assert_array_equal(seqs.text_vectors[seqs.text[bounds[0] + 2:bounds[0] + 4]],
                                  now.text_vectors[now.text[2:4]])


def test_snapshot_without_a_cache_is_a_clear_error():
    from churnguard.snapshots import Snapshot

    index = pd.MultiIndex.from_tuples([("u", pd.Timestamp(CUTOFF))], names=["user_id", "cutoff"])
    with pytest.raises(ValueError, match="carries no event sequences"):
        sequences_of(Snapshot(features=pd.DataFrame({"x": [1.0]}, index=index)))


@pytest.mark.slow
def test_real_minilm_text_vectors_are_similar_for_similar_texts(shop):
    from churnguard.sequences.tokens import project_texts

    v = project_texts(["the parcel is late", "delivery was late", "great quality"])
    assert v.shape == (3, TEXT_DIM)
    cos = v @ v.T / np.outer(np.linalg.norm(v, axis=1), np.linalg.norm(v, axis=1))
    assert cos[0, 1] > cos[0, 2]


def test_cache_keeps_the_texts_its_vectors_were_encoded_from(shop, tmp_path: Path):
    from churnguard.sequences.tokens import project_texts

    insert(shop, [("b2", "bob", "2025-02-28 08:00", "review", None, "包裹晚到了三天", 1)])
    root = tmp_path / "c"
    built = SequenceCache(shop, root=root).at(CUTOFF, texts=True, strings=True).sequences
    seqs = SequenceCache(shop, root=root).at(CUTOFF, texts=True, strings=True).sequences
    assert sorted(seqs.text_strings.tolist()) == ["late parcel", "where is it?", "包裹晚到了三天"]
    assert seqs.text_strings.tolist() == built.text_strings.tolist()  # written, read back
    np.testing.assert_allclose(seqs.text_vectors, project_texts(seqs.text_strings.tolist()),
                               atol=1e-6)
    # the review (alice's third event) and bob's review point at their own texts
    assert seqs.text_strings[seqs.text[2]] == "late parcel"
    assert seqs.text_strings[seqs.text[seqs.offsets[1] + 1]] == "包裹晚到了三天"
    # asked without strings, the cache reads none
    assert SequenceCache(shop, root=root).at(CUTOFF, texts=True).sequences.text_strings is None


def test_a_cache_written_before_texts_were_kept_is_rebuilt_only_when_they_are_needed(
        shop, tmp_path: Path):
    root = tmp_path / "c"
    folder = SequenceCache(shop, root=root).at(CUTOFF, texts=True).path
    for name in ("text_strings_utf8.npy", "text_strings_offsets.npy"):
        (folder / name).unlink()  # as an older churnguard wrote it
    older = SequenceCache(shop, root=root).at(CUTOFF, texts=True)
    assert older.path == folder and older.sequences.text_strings is None
    rebuilt = SequenceCache(shop, root=root).at(CUTOFF, texts=True, strings=True)
    assert sorted(rebuilt.sequences.text_strings.tolist()) == ["late parcel", "where is it?"]
    assert (folder / "text_strings_utf8.npy").exists()
    with pytest.raises(ValueError, match="needs texts=True"):
        SequenceCache(shop, root=root).at(CUTOFF, texts=False, strings=True)
