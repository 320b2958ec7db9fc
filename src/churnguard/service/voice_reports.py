"""The voice report (:func:`churnguard.voice.surges.voice_alerts`) for ``GET /v1/voice`` and the
dashboard's voice page, kept while the texts, codebooks and scores it read are unchanged: reading
every review and ticket through the encoder and the sentiment model takes seconds to minutes."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from churnguard.store import Store
from churnguard.voice.surges import voice_alerts, voice_fingerprint

__all__ = ["voice_document"]

_LOCK = threading.Lock()
_KEPT = 8


def voice_document(state: Any, store: Store, config: Any, *, as_of: dt.date | None,
                   days: int | None) -> dict:
    """The report's document, from ``state.voice_reports`` when nothing it read has changed."""
    cache = getattr(state, "voice_reports", None)
    if cache is None:
        cache = state.voice_reports = {}
    key = (as_of, days, voice_fingerprint(store))
    with _LOCK:
        if key in cache:
            return cache[key]
    document = voice_alerts(store, config, as_of=as_of, days=days).to_dict()
    with _LOCK:
        if len(cache) >= _KEPT:
            cache.pop(next(iter(cache)))
        cache[key] = document
    return document
