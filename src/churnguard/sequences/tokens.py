"""How one event becomes one token: small integer codes plus a few continuous time values.

A token has six categorical fields (code 0 is padding everywhere, code 1 "absent"):

========  ==========================================================================
field     codes
========  ==========================================================================
type      2 + index in :data:`EVENT_TYPES`; 1 for any other type
category  2 + crc32(category) mod :data:`CATEGORY_BUCKETS` (stable across runs and stores)
amount    2 + min(floor(2 log2(1 + amount)), 29): half-octave buckets up to ~32,000
hour      1 + hour of day (UTC)
weekday   ISO weekday 1..7
rating    1 + rating (1..5) of a review
========  ==========================================================================

and three continuous values: ``log1p(hours since the previous event)`` (0 for the first event,
with the flag below), ``log1p(days before the cutoff)``, and a 0/1 flag "no previous event".
Reviews and support tickets also carry a text vector: the sentence embedding of
:mod:`churnguard.text` (MiniLM-L6 for English; for mostly Chinese texts, once the store has
enough of them, the shop's own character n-gram encoder, of the same size) mapped to
:data:`TEXT_DIM` dimensions by a fixed random projection (Johnson & Lindenstrauss 1984;
Achlioptas 2003, "Database-friendly random projections", PODS), so the projection never depends
on the data.

>>> type_codes(["order", "view", "teleport"]).tolist()
[6, 2, 1]
>>> amount_codes(np.array([np.nan, 0.0, 10.0, 1e9])).tolist()
[1, 2, 8, 31]
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence

import numpy as np

__all__ = [
    "CATEGORICAL_FIELDS",
    "CATEGORY_BUCKETS",
    "CONTINUOUS_FIELDS",
    "EVENT_TYPES",
    "TEXT_DIM",
    "TEXT_TYPES",
    "VOCAB_SIZES",
    "amount_codes",
    "category_codes",
    "project_texts",
    "project_vectors",
    "text_projection",
    "type_codes",
]

EVENT_TYPES: tuple[str, ...] = (
    "view", "search", "cart_add", "cart_remove", "order", "return", "review", "support_ticket",
    "ticket_resolved", "coupon_redeem", "login", "visit",
)
TEXT_TYPES: tuple[str, ...] = ("review", "support_ticket")
CATEGORY_BUCKETS = 62
AMOUNT_BUCKETS = 30
TEXT_DIM = 32
_PROJECTION_SEED = 20220612  # fixed forever: changing it changes every cache and model

CATEGORICAL_FIELDS: tuple[str, ...] = ("type", "category", "amount", "hour", "weekday", "rating")
CONTINUOUS_FIELDS: tuple[str, ...] = ("log_gap_hours", "log_age_days", "first_event")
#: Number of codes per categorical field (padding and "absent" included).
VOCAB_SIZES: dict[str, int] = {
    "type": 2 + len(EVENT_TYPES),
    "category": 2 + CATEGORY_BUCKETS,
    "amount": 2 + AMOUNT_BUCKETS,
    "hour": 1 + 24,
    "weekday": 1 + 7,
    "rating": 2 + 5,
}


def type_codes(types: Sequence[str] | np.ndarray) -> np.ndarray:
    """Codes of event types (known types 2.., anything else 1)."""
    lookup = {t: 2 + i for i, t in enumerate(EVENT_TYPES)}
    return np.fromiter((lookup.get(t, 1) for t in types), dtype=np.uint8, count=len(types))


def category_codes(categories: Sequence[str | None] | np.ndarray) -> np.ndarray:
    """Hash buckets of categories (None: 1). crc32 rather than ``hash`` so codes are stable."""
    return np.fromiter(
        (1 if c is None else 2 + zlib.crc32(str(c).encode()) % CATEGORY_BUCKETS
         for c in categories), dtype=np.uint8, count=len(categories))


def amount_codes(amount: np.ndarray) -> np.ndarray:
    """Half-octave buckets of the amount; NaN (no amount) is 1."""
    amount = np.asarray(amount, dtype=float)
    known = np.isfinite(amount)
    bucket = np.floor(2 * np.log2(1 + np.clip(np.where(known, amount, 0.0), 0, None)))
    return np.where(known, 2 + np.minimum(bucket, AMOUNT_BUCKETS - 1), 1).astype(np.uint8)


@functools.cache
def _projection() -> np.ndarray:
    from churnguard.text import DIM

    rng = np.random.default_rng(_PROJECTION_SEED)
    return (rng.standard_normal((DIM, TEXT_DIM)) / np.sqrt(TEXT_DIM)).astype(np.float32)


def text_projection() -> np.ndarray:
    """The fixed (384, TEXT_DIM) float32 projection of MiniLM vectors (a copy)."""
    return _projection().copy()


def project_vectors(vectors: np.ndarray) -> np.ndarray:
    """Sentence vectors (n, 384) through the fixed projection: float32 (n, TEXT_DIM)."""
    return np.asarray(vectors, dtype=np.float32) @ _projection()


def project_texts(texts: Sequence[str], encoder=None) -> np.ndarray:  # noqa: ANN001
    """Embeddings of ``texts`` through the fixed projection: float32 (n, TEXT_DIM). MiniLM for
    all, or ``encoder`` (a :class:`churnguard.text.TextEncoder`: each text by its language)."""
    if len(texts) == 0:
        return np.zeros((0, TEXT_DIM), dtype=np.float32)
    if encoder is not None:
        return project_vectors(encoder.encode(list(texts)))
    from churnguard.text import encode_texts

    return project_vectors(encode_texts(list(texts)))
