"""Sentiment learned per language from rated reviews: good on phrasings it never saw, calibrated,
the fallback (snownlp, VADER) when there are too few rated reviews, the source always shown."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from churnguard.config import ProjectConfig
from churnguard.store import Store
from churnguard.text.bilingual import TextEncoder
from churnguard.voice import fit_sentiment, shop_sentiment
from churnguard.voice.sentiment import route_language
from voice.conftest import insert_texts

USE = TextEncoder(use=True)


def _stars(sentiment: np.ndarray) -> list[int]:
    # The composer's sentiment comes from the rating: positive 4-5 stars, negative 1-3.
    return [5 if s == "positive" else 1 for s in sentiment]


def _ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    at = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(p[at == b].mean() - y[at == b].mean()) * (at == b).mean()
                     for b in range(bins) if (at == b).any()))


@pytest.fixture(scope="module")
def reviews(composed):
    r = composed.kind == "review"
    return r & composed.seen, r & composed.unseen


@pytest.fixture(scope="module")
def learned(composed, reviews):
    train, _ = reviews
    idx = np.flatnonzero(train)
    return fit_sentiment([composed.texts[i] for i in idx], _stars(composed.sentiment[idx]),
                         encoder=USE)


@pytest.mark.slow
def test_learned_per_language_reads_unseen_phrasings(composed, reviews, learned):
    # Trained on reviews composed from 7 of 10 topic sentences, tested on those composed only
    # from the other 3. Measured: macro-F1 zh 0.83, en 0.87 (n-grams alone: 0.78 / 0.75). On
    # these reviews (no 3-star ones, no rating noise) cross-validation keeps the learned model
    # alone in both languages (log loss 0.004 / 0.008 with or without snownlp / VADER).
    _, held = reviews
    idx = np.flatnonzero(held)
    pred = learned.predict([composed.texts[i] for i in idx])
    sources = learned.sources()
    assert sources["zh"].startswith("learned from 1,145 rated reviews")
    assert sources["en"].startswith("learned from 1,190 rated reviews")
    for lang in ("zh", "en"):  # each prediction says which model read it
        assert set(pred.source[pred.language == lang]) == {learned.languages[lang].label}
    for lang in ("zh", "en"):
        m = (pred.language == lang).to_numpy()
        f1 = f1_score(composed.sentiment[idx][m], pred.sentiment[m], average="macro")
        assert f1 >= 0.80, (lang, f1)


@pytest.mark.slow
def test_calibrated_on_held_out_reviews(composed):
    # Platt scaling on cross-fitted folds, checked on a random half of the reviews held out
    # (calibration is about texts like those it learned from; unseen phrasings are a shift).
    # Measured ECE: calibrated 0.015 in both languages; without the Platt step 0.048 (zh) and
    # 0.035 (en), and its mean P(negative) further from the observed share.
    reviews = np.flatnonzero(composed.kind == "review")
    train = np.random.default_rng(0).random(reviews.size) < 0.5
    fit, held = reviews[train], reviews[~train]
    model = fit_sentiment([composed.texts[i] for i in fit], _stars(composed.sentiment[fit]),
                          encoder=USE)
    pred = model.predict([composed.texts[i] for i in held])
    y = (composed.sentiment[held] == "negative").astype(float)
    for lang in ("zh", "en"):
        m = (pred.language == lang).to_numpy()
        p = pred.p_negative.to_numpy()[m]
        assert _ece(p, y[m]) <= 0.025, (lang, _ece(p, y[m]))
        assert abs(p.mean() - y[m].mean()) <= 0.01, (lang, p.mean(), y[m].mean())


@pytest.mark.slow
def test_tickets_read_as_complaints(composed, learned):
    tickets = [t for t, k in zip(composed.texts, composed.kind) if k == "ticket"]
    assert (learned.predict(tickets).sentiment == "negative").mean() >= 0.8


def test_fallback_when_few_rated_reviews_and_source_shown(composed, reviews):
    train, held = reviews
    zh = route_language(composed.texts) == "zh"
    # All English reviews, but only 40 Chinese ones (of both sentiments): Chinese falls back.
    chinese = np.flatnonzero(train & zh)
    idx = np.sort(np.concatenate([np.flatnonzero(train & ~zh),
                                  chinese[::chinese.size // 40][:40]]))
    assert set(composed.sentiment[idx][zh[idx]]) == {"positive", "negative"}
    model = fit_sentiment([composed.texts[i] for i in idx], _stars(composed.sentiment[idx]),
                          min_rated=200)
    assert model.sources()["zh"] == "snownlp (40 rated reviews, fewer than 200)"
    assert model.sources()["en"].startswith("learned from 1,190 rated reviews")
    # too few to learn from: no stack tried, the package alone
    assert model.languages["zh"].pipeline is None and model.languages["zh"].stack is None
    test = np.flatnonzero(held)
    pred = model.predict([composed.texts[i] for i in test])
    assert set(pred.source[pred.language == "zh"]) == {"snownlp"}
    assert set(pred.source[pred.language == "en"]) <= {"learned", "learned+vader"}
    # snownlp reads the composer's Chinese reviews fairly (measured macro-F1 0.79).
    m = (pred.language == "zh").to_numpy()
    assert f1_score(composed.sentiment[test][m], pred.sentiment[m], average="macro") >= 0.7
    # No rated review at all: VADER for English.
    none = fit_sentiment(["great"], [None])
    assert none.sources()["en"] == "vader (0 rated reviews, fewer than 200)"
    assert none.predict(["terrible, broke after a day", "great, love it"]).sentiment.tolist() \
        == ["negative", "positive"]


def test_one_sided_ratings_fall_back(composed):
    # Enough reviews but almost all positive: nothing to learn complaints from.
    en = [t for t, k, s in zip(composed.texts, composed.kind, composed.sentiment)
          if k == "review" and s == "positive" and route_language([t])[0] == "en"]
    model = fit_sentiment(en[:300] + [f"awful {i}" for i in range(10)], [5] * 300 + [1] * 10,
                          min_rated=200)
    assert model.sources()["en"].startswith("vader")


def test_shop_sentiment_from_the_stores_rated_reviews(composed, reviews):
    train, _ = reviews
    idx = np.flatnonzero(train)[::3]
    store = Store.in_memory()
    insert_texts(store, [composed.texts[i] for i in idx],
                 ratings=[float(r) for r in _stars(composed.sentiment[idx])])
    config = ProjectConfig.model_validate({"voice": {"min_rated_reviews": 100}})
    model = shop_sentiment(store, config)
    assert all(s.startswith("learned from") for s in model.sources().values())
    assert all(m.stack is not None for m in model.languages.values())  # stacking was tried
    assert model.encoder.key == "use-m3"
    off = shop_sentiment(store, ProjectConfig.model_validate(
        {"voice": {"min_rated_reviews": 100, "stack_package": False}}))
    assert all(m.stack is None and not m.stacked for m in off.languages.values())
    assert all(s.startswith("learned from") and s.endswith("rated reviews")
               for s in off.sources().values())


def _lexicon_reviews(n: int, offset: int) -> tuple[list[str], list[int]]:
    """Reviews that each praise or damn with one word of VADER's lexicon, the word changing
    from review to review (``offset``: where in the word lists they start), in the same four
    frames: the shop's words teach nothing about a review with a new word."""
    from churnguard.voice.sentiment import _vader

    lexicon = _vader().lexicon
    neg = sorted(w for w, v in lexicon.items() if v <= -2.0 and w.isalpha())
    pos = sorted(w for w, v in lexicon.items() if v >= 2.0 and w.isalpha())
    frames = ["the item", "my order", "this one", "the parcel"]
    texts, stars = [], []
    for i in range(n):
        words = neg if i % 2 == 0 else pos
        texts.append(f"{frames[(i // 2) % 4]} was {words[(i // 2 + offset) % len(words)]}")
        stars.append(1 if i % 2 == 0 else 5)
    return texts, stars


def test_the_package_is_stacked_when_cross_validation_says_it_helps():
    # Each word appears in one review: the n-grams learn nothing that carries to new words,
    # VADER's lexicon does. Measured: cross-validated log loss 0.011 stacked against 0.697
    # alone; accuracy on reviews with words never rated 1.00 stacked, 0.42 alone.
    texts, stars = _lexicon_reviews(400, 0)
    model = fit_sentiment(texts, stars, min_rated=100)
    en = model.languages["en"]
    assert en.stacked and en.label == "learned+vader"
    assert en.stack.log_loss_stacked < 0.5 * en.stack.log_loss_learned
    assert model.sources()["en"] == (
        f"learned from 400 rated reviews, stacked with vader (cross-validated log loss "
        f"{en.stack.log_loss_stacked:.3f} against {en.stack.log_loss_learned:.3f} alone)")
    new_texts, new_stars = _lexicon_reviews(200, 200)
    pred = model.predict(new_texts)
    truth = np.where(np.array(new_stars) == 1, "negative", "positive")
    assert (pred.source == "learned+vader").all()
    assert (pred.sentiment.to_numpy() == truth).mean() >= 0.9
    alone = fit_sentiment(texts, stars, min_rated=100, stack=False)
    assert alone.sources()["en"] == "learned from 400 rated reviews"
    assert (alone.predict(new_texts).sentiment.to_numpy() == truth).mean() < 0.7
    # P(negative) of the stack stays a probability, ordered with the evidence
    p = model.languages["en"].p_negative(["it was awful", "it was wonderful"])
    assert 0.5 < p[0] <= 1.0 and 0.0 <= p[1] < 0.5


def test_a_package_that_says_nothing_is_not_stacked():
    # Made-up words VADER does not know: its score is 0.5 for every review, and the learned
    # model stays alone (the stack's cross-validated log loss is no lower).
    rng = np.random.default_rng(0)
    words = [f"zq{i}" for i in range(30)]
    texts, stars = [], []
    for i in range(300):
        drawn = list(rng.choice(words, 3))
        texts.append(" ".join(drawn))
        stars.append(1 if sum(w in words[:15] for w in drawn) >= 2 else 5)
    model = fit_sentiment(texts, stars, min_rated=100)
    en = model.languages["en"]
    assert not en.stacked and en.label == "learned" and en.stack is not None
    assert model.sources()["en"].startswith(
        "learned from 300 rated reviews (stacking with vader not better: cross-validated")
    assert set(model.predict(texts[:20]).source) == {"learned"}
