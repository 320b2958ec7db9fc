"""The voice of one shop: its reviews and tickets with sentiment and topic, from its store.

- :func:`shop_sentiment`: sentiment learned from the store's rated reviews (or the fallback per
  language), deterministic: the same reviews give the same model.
- :func:`shop_codebook`: the stored topic codebook, fitted on first use on the store's distinct
  review and ticket texts; ``refit=True`` fits a new one and maps the old topics to it.
- :func:`voice_texts`: every review and ticket (optionally in a time window) with language,
  sentiment and its source, topic and topic name.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnguard.config import ProjectConfig
from churnguard.errors import ChurnguardError
from churnguard.store import Store
from churnguard.text.bilingual import TextEncoder, shop_text_encoder
from churnguard.voice.codebook import Codebook, fit_codebook, map_topics
from churnguard.voice.sentiment import SentimentModel, fit_sentiment, route_language

__all__ = ["CodebookStale", "Refit", "shop_codebook", "shop_sentiment", "voice_texts"]

_TEXT_TYPES = ("review", "support_ticket")


class CodebookStale(ChurnguardError, ValueError):
    """The stored codebook's centroids are in another encoder's space than the store's now."""

    code = "codebook_stale"


@dataclass(frozen=True)
class Refit:
    """What a refit did: the codebook replaced (None: there was none) and old key → new key."""

    previous_id: str | None
    mapping: dict[str, str | None]


def _rated_reviews(store: Store) -> tuple[list[str], list[float]]:
    rows = store.con.execute(
        "SELECT text, rating FROM events WHERE type = 'review' AND text IS NOT NULL "
        "AND rating IS NOT NULL ORDER BY event_id").fetchall()
    return [r[0] for r in rows], [float(r[1]) for r in rows]


def shop_sentiment(store: Store, config: ProjectConfig) -> SentimentModel:
    """Sentiment per language, learned from the store's rated reviews or the fallback."""
    texts, ratings = _rated_reviews(store)
    return fit_sentiment(texts, ratings, min_rated=config.voice.min_rated_reviews,
                         encoder=shop_text_encoder(store, config.text.encoder),
                         stack=config.voice.stack_package)


def _distinct_texts(store: Store) -> list[str]:
    return [r[0] for r in store.con.execute(
        "SELECT DISTINCT text FROM events WHERE type IN ('review', 'support_ticket') "
        "AND text IS NOT NULL AND trim(text) <> '' ORDER BY text").fetchall()]


def _newest(store: Store) -> tuple[str, bytes] | None:
    row = store.con.execute(
        "SELECT codebook_id, payload FROM topic_codebooks ORDER BY fitted_at DESC, codebook_id "
        "LIMIT 1").fetchall()
    return (row[0][0], bytes(row[0][1])) if row else None


def _fit(store: Store, config: ProjectConfig, encoder: TextEncoder) -> Codebook:
    texts = _distinct_texts(store)
    if not texts:
        raise ChurnguardError("no review or ticket texts in the store to find topics in",
                              code="no_texts")
    v = config.voice
    return fit_codebook(texts, encoder.encode(texts), clusters=v.clusters,
                        abstain_iqr=v.abstain_iqr, seed=v.seed,
                        encoder_key=encoder.key)


def shop_codebook(store: Store, config: ProjectConfig, *,
                  refit: bool = False) -> tuple[Codebook, Refit | None]:
    """The store's codebook (fitted and stored on first use) and, when this call fitted one,
    what it replaced. Raises :class:`CodebookStale` when the stored codebook was fitted with
    another text encoder than the store reads texts with now (refit then)."""
    encoder = shop_text_encoder(store, config.text.encoder)
    newest = _newest(store)
    if newest is not None and not refit:
        book = Codebook.from_bytes(newest[1])
        if book.encoder_key != encoder.key:
            raise CodebookStale(
                f"the topic codebook {newest[0]} was fitted on {book.encoder_key} vectors and "
                f"texts are now read by {encoder.key}: refit it (refit=True)")
        return book, None
    book = _fit(store, config, encoder)
    mapping: dict[str, str | None] = {}
    previous_id = None
    if newest is not None:
        previous_id = newest[0]
        book, mapping = map_topics(Codebook.from_bytes(newest[1]), book)
    store.con.execute(
        "INSERT INTO topic_codebooks VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [book.codebook_id, dt.datetime.now(dt.UTC).replace(tzinfo=None), book.encoder_key,
         book.n_texts, len(book.keys), previous_id, json.dumps(mapping, sort_keys=True),
         book.to_bytes()])
    return book, Refit(previous_id, mapping)


def voice_texts(store: Store, config: ProjectConfig, *, start: dt.datetime | None = None,
                end: dt.datetime | None = None) -> pd.DataFrame:
    """Reviews and tickets with ts in [start, end): event_id, user_id, ts, type, text, rating,
    language, p_negative, sentiment, sentiment_source, topic (None: abstained), topic_name and
    similarity (cosine to the nearest centroid)."""
    where, params = ["type IN ('review', 'support_ticket')", "text IS NOT NULL"], []
    if start is not None:
        where.append("ts >= ?")
        params.append(start)
    if end is not None:
        where.append("ts < ?")
        params.append(end)
    frame = store.con.execute(
        "SELECT event_id, user_id, ts, type, text, rating FROM events WHERE "
        + " AND ".join(where) + " ORDER BY ts, event_id", params).df()
    book, _ = shop_codebook(store, config)
    texts = frame["text"].tolist()
    vectors = shop_text_encoder(store, config.text.encoder).encode(texts)
    sentiment = shop_sentiment(store, config).predict(texts, vectors)
    topics, sims = book.assign(vectors, route_language(texts))
    names = config.voice.topic_names
    return frame.assign(
        language=sentiment["language"].to_numpy(), p_negative=sentiment["p_negative"].to_numpy(),
        sentiment=sentiment["sentiment"].to_numpy(),
        sentiment_source=sentiment["source"].to_numpy(), topic=topics,
        topic_name=np.array([book.label(t, names) for t in topics], dtype=object),
        similarity=sims)
