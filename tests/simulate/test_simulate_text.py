"""The simulated shop's reviews and tickets: composed with variety in Chinese and English, the
same for the same seed, and each with its truth (truth/texts.parquet) agreeing with the events."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from churnguard.simulate import simulate
from churnguard.simulate.text import _PARTS, TOPICS, VARIANTS, _bank

TEXT_TYPES = ["review", "support_ticket"]


def _texts(shop) -> pd.DataFrame:
    """Review and ticket events joined with their truth and their writer's language."""
    truth = pd.read_parquet(shop.result.paths["truth_texts"])
    events = shop.events[shop.events["type"].isin(TEXT_TYPES)]
    rows = events.merge(truth, on="event_id", how="outer", suffixes=("", "_truth"),
                        indicator=True)
    return rows.merge(shop.users[["user_id", "language"]].rename(
        columns={"language": "user_language"}), on="user_id", how="left")


def test_every_review_and_ticket_has_its_truth(default_shop):
    rows = _texts(default_shop)
    assert (rows["_merge"] == "both").all()  # no event without truth, no truth without event
    assert (rows["user_id"] == rows["user_id_truth"]).all()
    assert (rows["ts"] == rows["ts_truth"]).all()
    kinds = rows["type"].map({"review": "review", "support_ticket": "ticket"})
    assert (rows["kind"] == kinds).all()
    assert set(rows["topic"]) == set(TOPICS)
    reviews = rows[rows["type"] == "review"]
    # The text's sentiment follows the rating (4-5 stars positive), tickets are complaints.
    assert ((reviews["rating"] >= 4) == (reviews["sentiment"] == "positive")).all()
    assert (rows.loc[rows["type"] == "support_ticket", "sentiment"] == "negative").all()
    # Written in the customer's language, sometimes with words of the other.
    assert set(rows.loc[rows["user_language"] == "zh", "language"]) == {"zh", "mixed"}
    assert set(rows.loc[rows["user_language"] == "en", "language"]) == {"en", "mixed"}
    contact = rows["text"].str.contains("@|\\+86|\\+1 ", regex=True)
    assert (contact == rows["has_contact"]).all()
    assert 0.02 < rows.loc[rows["type"] == "support_ticket", "has_contact"].mean() < 0.08


def test_texts_vary_within_every_topic_sentiment_and_language(default_shop):
    rows = _texts(default_shop)
    rows = rows[~rows["has_contact"]]
    base = np.where(rows["user_language"] == "zh", "zh", "en")
    sizes = rows.groupby([rows["kind"], rows["topic"], rows["sentiment"], base])["text"]
    for key, n_distinct in sizes.nunique().items():
        n = sizes.size()[key]
        # Variants are drawn uniformly from VARIANTS per key: nearly all distinct while few.
        expected = VARIANTS * (1 - (1 - 1 / VARIANTS) ** n)
        assert n_distinct > 0.85 * expected, (key, n, n_distinct)
    mixed = (rows["language"] == "mixed").groupby(base).mean()
    assert 0.06 < mixed["zh"] < 0.2 and 0.02 < mixed["en"] < 0.1


def test_english_texts_carry_typos_and_off_topic_remarks():
    texts, _, truth = _bank()
    english = [t for t in dict.fromkeys(texts) if truth[t][3] == "en"]
    words = set()
    for section in (_PARTS["en"]["parts"], *(_PARTS["en"]["review"][t][s] for t in TOPICS
                                                for s in ("positive", "negative")),
                    *(_PARTS["en"]["ticket"][t] for t in TOPICS), _PARTS["en"]["slots"]):
        for values in section.values():
            words.update(w for v in values for w in re.findall(r"[a-z']+", v.lower()))
    typo = np.mean([any(w not in words for w in re.findall(r"[a-z']+", t.lower()))
                    for t in english])
    noise = np.mean([any(n in t or n.lower() in t for n in _PARTS["en"]["parts"]["noise"])
                     for t in english])
    assert 0.15 < typo < 0.45, typo  # about 30% of texts get one or two
    assert 0.08 < noise < 0.25, noise  # 15%


def test_same_seed_same_texts_other_seed_other_texts(tmp_path):
    def texts(seed: int, folder: str) -> pd.DataFrame:
        result = simulate(n_users=300, days=150, seed=seed, out_dir=tmp_path / folder)
        events = pd.read_parquet(result.paths["events"], columns=["event_id", "text"])
        return pd.read_parquet(result.paths["truth_texts"]).merge(events, on="event_id")

    first, again, other = texts(5, "a"), texts(5, "b"), texts(6, "c")
    assert len(first) > 100
    pd.testing.assert_frame_equal(first, again)
    assert set(first["text"]) != set(other["text"])
