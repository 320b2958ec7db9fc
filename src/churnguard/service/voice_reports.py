"""The voice report (:func:`churnguard.voice.surges.voice_alerts`) for ``GET /v1/voice`` and the
dashboard's voice page, kept while the texts, codebooks and scores it read are unchanged: reading
every review and ticket through the encoder and the sentiment model takes seconds to minutes.

The topic codebook is fitted and stored on the first call, under the store's write lock; the
report itself is read without it, so ingesting events is not held up while it is computed."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from churnguard.voice.shop import shop_codebook
from churnguard.voice.surges import NoTextsError, last_text_day, voice_alerts, voice_fingerprint

__all__ = ["voice_document"]

_LOCK = threading.Lock()
_KEPT = 8


def voice_document(state: Any, service: Any, *, as_of: dt.date | None,
                   days: int | None) -> dict:
    """The report's document, from ``state.voice_reports`` when nothing it read has changed."""
    config = service.project.config
    cache = getattr(state, "voice_reports", None)
    if cache is None:
        cache = state.voice_reports = {}
    with service.pool.reading() as store:
        key = (as_of, days, voice_fingerprint(store))
        with _LOCK:
            if key in cache:
                return cache[key]
        has_codebook = key[2][2] > 0  # the fingerprint's third figure: stored codebooks
    if not has_codebook:
        with service.pool.writing() as store:
            voice_alerts_ready(store, config)
    with service.pool.reading() as store:
        document = voice_alerts(store, config, as_of=as_of, days=days).to_dict()
        key = (as_of, days, voice_fingerprint(store))
    with _LOCK:
        if len(cache) >= _KEPT:
            cache.pop(next(iter(cache)))
        cache[key] = document
    return document


def voice_alerts_ready(store: Any, config: Any) -> None:
    """Fit and store the topic codebook when there is none (a store without texts is left to
    :func:`voice_alerts` to refuse, with its own message)."""
    try:
        last_text_day(store)
    except NoTextsError:
        return
    shop_codebook(store, config)
