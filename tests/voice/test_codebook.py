"""The topic codebook: topics on phrasings it never saw with few abstentions, identical
assignments on rerun, a refit that maps old topics to new, kept in the store."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import f1_score

from churnguard.config import ProjectConfig
from churnguard.store import Store
from churnguard.voice import CodebookStale, fit_codebook, map_topics, shop_codebook, voice_texts
from churnguard.voice.sentiment import route_language
from voice.conftest import insert_texts


def _assign(book, composed, vectors, rows):
    return book.assign(vectors[rows], route_language([composed.texts[i] for i in rows]))


def _names(book, composed, vectors, rows):
    keys, _ = _assign(book, composed, vectors, rows)
    votes: dict[str, Counter] = {}
    for k, t in zip(keys, composed.topic[rows]):
        if k is not None:
            votes.setdefault(k, Counter())[t] += 1
    return {k: min(c, key=lambda t: (-c[t], t)) for k, c in votes.items()}


@pytest.fixture(scope="module")
def fitted(composed, use_vectors):
    rows = np.flatnonzero(composed.seen)[::2]
    book = fit_codebook([composed.texts[i] for i in rows], use_vectors[rows], clusters=12)
    return book, rows


@pytest.fixture(scope="module")
def small(composed):
    """A codebook on a sixth of the seen texts, with the USE vectors of those and of a sixth of
    the unseen ones (rows into composed.texts; a few seconds)."""
    from churnguard.text.use import encode_use

    rows = np.flatnonzero(composed.seen)[::6]
    held = np.flatnonzero(composed.unseen)[::6]
    vectors = np.zeros((len(composed.texts), 384), np.float32)
    both = np.concatenate([rows, held])
    vectors[both] = encode_use([composed.texts[i] for i in both])
    book = fit_codebook([composed.texts[i] for i in rows], vectors[rows], clusters=12)
    return book, rows, held, vectors


@pytest.mark.slow
def test_topics_on_unseen_phrasings(composed, use_vectors, fitted):
    # Fitted on texts composed from 7 of 10 topic sentences (per topic, sentiment, language),
    # read on those composed only from the other 3. Measured (USE, 12 clusters per script path,
    # Tukey's fence): macro-F1 zh 0.88, en 0.84-0.87, abstained zh 5%, en 8%. With the floor at
    # the 1% quantile of the fitting texts instead, zh abstained 13-15%.
    book, rows = fitted
    names = _names(book, composed, use_vectors, rows)
    held = np.flatnonzero(composed.unseen)
    keys, _ = _assign(book, composed, use_vectors, held)
    for lang in ("zh", "en"):
        m = composed.written[held] == lang
        answered = m & np.array([k is not None for k in keys])
        assert 1 - answered.sum() / m.sum() <= 0.10, lang
        pred = [names.get(k, "none") for k in keys[answered]]
        f1 = f1_score(composed.topic[held][answered], pred, average="macro")
        assert f1 >= 0.80, (lang, f1)


def test_off_topic_remarks_abstain(small):
    from churnguard.text.use import encode_use

    # Not every remark: "my cat is cute" was taken by a cluster of praise on the full codebook.
    remarks = ["今天天气真好", "我的猫很可爱", "明天去爬山", "hello world", "football tonight"]
    keys, _ = small[0].assign(encode_use(remarks), route_language(remarks))
    assert keys.tolist() == [None] * len(remarks)


def test_rerun_gives_identical_assignments(composed, small):
    book, rows, held, vectors = small
    again = fit_codebook([composed.texts[i] for i in rows[::-1]], vectors[rows[::-1]],
                         clusters=12)
    assert again.to_bytes() == book.to_bytes()
    first, sims = _assign(book, composed, vectors, held)
    second, sims2 = _assign(type(book).from_bytes(book.to_bytes()), composed, vectors, held)
    assert first.tolist() == second.tolist()
    assert np.array_equal(sims, sims2)
    assert sum(k is not None for k in first) >= 0.8 * len(first)


def test_abstains_far_from_every_centroid(small):
    book = small[0]
    zh = book.centroids[book.paths.index("zh")]
    vectors = np.stack([np.zeros_like(zh), -zh, zh])
    keys, _ = book.assign(vectors, ["zh", "zh", "zh"])
    assert keys.tolist()[:2] == [None, None]
    assert keys[2] == book.keys[book.paths.index("zh")]


@pytest.mark.slow
def test_refit_maps_old_topics_to_new(composed, use_vectors):
    # Two codebooks on two disjoint halves of the texts. A person named the old topics; after
    # the refit, a new topic matched to an old one keeps its key and so its name. Measured on
    # held-out texts: the name a text gets agrees with the one it had for 0.87 of them (0.22
    # with the new codebook's own keys); the keys themselves agree for 0.62 (clusters of a
    # second fit split the groups a little differently), and 23 of 24 topics are matched.
    seen = np.flatnonzero(composed.seen)
    a, b = seen[::2], seen[1::2]
    old = fit_codebook([composed.texts[i] for i in a], use_vectors[a], clusters=12, seed=0)
    new = fit_codebook([composed.texts[i] for i in b], use_vectors[b], clusters=12, seed=1)
    rekeyed, mapping = map_topics(old, new)
    names = _names(old, composed, use_vectors, a)
    held = np.flatnonzero(composed.unseen)
    before, _ = _assign(old, composed, use_vectors, held)
    after, _ = _assign(rekeyed, composed, use_vectors, held)
    named = [(names[x], names[y]) for x, y in zip(before, after) if x in names and y in names]
    assert len(named) >= 0.8 * len(held)
    assert np.mean([x == y for x, y in named]) >= 0.8
    assert sum(v is not None for v in mapping.values()) >= 0.8 * len(old.keys)
    assert sorted(k for k in mapping.values() if k) == sorted(set(rekeyed.keys) & set(old.keys))
    # Keys are unique, and a new topic without a counterpart gets a number not used before.
    assert len(set(rekeyed.keys)) == len(rekeyed.keys)
    fresh = set(rekeyed.keys) - set(old.keys)
    for k in fresh:
        same = [int(o[2:]) for o in old.keys if o[:2] == k[:2]]
        assert int(k[2:]) > max(same)


def test_keyphrases_name_topics_and_names_are_editable(small):
    book = small[0]
    key = book.keys[0]
    assert book.label(key) == " / ".join(book.keyphrases[0]) and len(book.keyphrases[0]) == 3
    assert book.label(key, {key: "物流慢"}) == "物流慢"


def test_stored_codebook_is_reused_stale_refused_refit_recorded(composed, tmp_path):
    rows = np.flatnonzero(composed.seen)[::16]
    texts = [composed.texts[i] for i in rows]
    config = ProjectConfig.model_validate({"voice": {"clusters": 6}})
    with Store.open(tmp_path / "churnguard.duckdb", threads=1) as store:
        insert_texts(store, texts)
        book, refit = shop_codebook(store, config)
        assert refit is not None and refit.previous_id is None
        first = voice_texts(store, config)
        # New texts after the fit do not change the codebook or any earlier text's topic.
        more = [composed.texts[i] for i in np.flatnonzero(composed.unseen)[::16]]
        insert_texts(store, more, start=len(texts))
        again, refit = shop_codebook(store, config)
        assert refit is None and again.codebook_id == book.codebook_id
        second = voice_texts(store, config).set_index("event_id").loc[first["event_id"]]
        assert second["topic"].tolist() == first["topic"].tolist()
        assert first["sentiment_source"].isin(["learned", "learned+snownlp", "learned+vader",
                                                "snownlp", "vader"]).all()
        # Texts now read by another encoder: the stored centroids do not apply.
        bilingual = ProjectConfig.model_validate({"voice": {"clusters": 6},
                                                  "text": {"encoder": "bilingual"}})
        with pytest.raises(CodebookStale):
            shop_codebook(store, bilingual)
        # A refit on demand is stored with its mapping from the old keys.
        newer, refit = shop_codebook(store, config, refit=True)
        assert refit.previous_id == book.codebook_id
        stored = store.con.execute(
            "SELECT previous_id, mapping FROM topic_codebooks WHERE codebook_id = ?",
            [newer.codebook_id]).fetchall()
        assert stored[0][0] == book.codebook_id
        assert json.loads(stored[0][1]) == refit.mapping
        assert sum(v is not None for v in refit.mapping.values()) >= len(book.keys) // 2
