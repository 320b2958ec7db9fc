"""Texts in Chinese and English as vectors of one size: English through MiniLM, Chinese through
the shop's own character n-gram encoder.

A text goes by its majority script (:func:`~churnguard.text.language.chinese_majority`): mostly
Chinese texts to the :class:`~churnguard.text.chinese.ChineseEncoder`, the rest to MiniLM. Both
give unit vectors of :data:`~churnguard.text.minilm.DIM` dimensions, so event tokens, sequence
caches and title similarities keep their shapes. The two are different spaces: a Chinese and an
English text about late parcels are not near each other; within each language, similar texts
are.

The shop's encoder is fitted once, on the distinct review, ticket and item-title texts of the
store that are mostly Chinese, and kept in the store (table ``text_encoders``): every cache,
model and score after that reads texts the same way, and a copy of the store carries it. With
fewer than :data:`MIN_FIT_TEXTS` such texts nothing is fitted and Chinese texts go to MiniLM,
as before (they then fit nothing reliable); the encoder is fitted on a later call once the shop
has them.

>>> from churnguard.store import Store
>>> store = Store.in_memory()
>>> shop_text_encoder(store).key  # no Chinese texts: MiniLM for all
'minilm'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from churnguard.store import Store
from churnguard.text.chinese import ChineseEncoder, TooFewTerms
from churnguard.text.language import CJK, chinese_majority
from churnguard.text.minilm import DIM, encode_texts

__all__ = ["ENCODERS", "KIND", "MIN_FIT_TEXTS", "TextEncoder", "encode_titles",
           "fit_text_encoder", "shop_text_encoder"]

# The choices of ``[text] encoder`` in churnguard.toml (config.TextConfig).
ENCODERS = ("use", "bilingual")

MIN_FIT_TEXTS = 50
KIND = "zh_char_tfidf_svd"
# Only texts with a Chinese character can be mostly Chinese: an English shop reads none.
_TEXTS_SQL = f"""
SELECT DISTINCT text FROM events
WHERE type IN ('review', 'support_ticket') AND regexp_matches(text, '[{CJK}]')
UNION
SELECT DISTINCT title FROM items WHERE regexp_matches(title, '[{CJK}]')
"""
_LOADED: dict[str, ChineseEncoder] = {}  # decoded once per process


@dataclass(frozen=True)
class TextEncoder:
    """MiniLM for English, ``zh`` (None: not fitted, MiniLM for all) for Chinese; or, with
    ``use``, the multilingual USE (:mod:`churnguard.text.use`) for every text."""

    zh: ChineseEncoder | None = None
    use: bool = False

    @property
    def key(self) -> str:
        """Identifies what vectors this encoder gives (part of every text cache's key)."""
        if self.use:
            from churnguard.text.use import KEY

            return KEY
        return "minilm" if self.zh is None else f"minilm+zh:{self.zh.encoder_id}"

    def chinese(self, texts: Sequence[str | None]) -> np.ndarray:
        """True for the texts the Chinese encoder reads (all False when it is not fitted or
        when USE reads every text)."""
        if self.zh is None or self.use:
            return np.zeros(len(texts), dtype=bool)
        return chinese_majority(texts)

    def encode_chinese(self, texts: Sequence[str]) -> np.ndarray:
        """The Chinese encoder's unit vectors (n, DIM); ``ValueError`` when it is not fitted."""
        if self.zh is None:
            raise ValueError("this TextEncoder has no Chinese encoder fitted")
        return self.zh.transform(list(texts))

    def encode(self, texts: Sequence[str | None]) -> np.ndarray:
        """Unit float32 vectors (n, DIM), each text through the encoder of its language."""
        texts = ["" if t is None else t for t in texts]
        if self.use:
            from churnguard.text.use import encode_use

            return encode_use(texts)
        out = np.zeros((len(texts), DIM), np.float32)
        zh = self.chinese(texts)
        if zh.any():
            out[zh] = self.encode_chinese([t for t, z in zip(texts, zh) if z])
        if (~zh).any():
            out[~zh] = encode_texts([t for t, z in zip(texts, zh) if not z])
        return out


def fit_text_encoder(texts: Iterable[str]) -> TextEncoder:
    """Fit the Chinese encoder on the mostly Chinese ``texts`` (MiniLM only when fewer than
    :data:`MIN_FIT_TEXTS` distinct ones, or when they share too few terms to fit on).

    >>> fit_text_encoder(["太慢", "太贵"] * 30).key  # two distinct texts: nothing to fit
    'minilm'
    >>> fit_text_encoder([chr(0x4E00 + i) for i in range(60)]).key  # no term in two texts
    'minilm'
    """
    distinct = sorted({t for t in texts if t})
    chinese = [t for t, z in zip(distinct, chinese_majority(distinct)) if z]
    if len(chinese) < MIN_FIT_TEXTS:
        return TextEncoder()
    try:
        return TextEncoder(zh=ChineseEncoder.fit(chinese))
    except TooFewTerms:  # as with too few texts: MiniLM reads them until the shop has more
        return TextEncoder()


def encode_titles(titles: Sequence[str]) -> np.ndarray:
    """Unit vectors (n, DIM) of item titles, all in one space, so that any two compare: through
    a Chinese encoder fitted on these titles when most of them are mostly Chinese (and there
    are :data:`MIN_FIT_TEXTS` of them; Latin words are tokens of it too), else through MiniLM.
    Fitted on the titles alone, the vectors depend on nothing but the titles given.

    >>> titles = [a + n for a in ("经典", "迷你", "智能", "豪华", "高级", "专业")
    ...           for n in ("耳机", "手表", "音箱", "充电宝", "电饭煲", "平底锅", "绿茶", "数据线",
    ...                     "橄榄油", "厨师刀")]
    >>> v = encode_titles(titles)
    >>> v.shape
    (60, 384)
    >>> bool(v[0] @ v[10] > v[0] @ v[11])  # 经典耳机: 迷你耳机 is closer than 迷你手表
    True
    """
    titles = list(titles)
    if len(titles) and chinese_majority(titles).mean() >= 0.5:
        encoder = fit_text_encoder(titles)
        if encoder.zh is not None:
            return encoder.zh.transform(titles)
    return encode_texts(titles)


def _has_table(store: Store) -> bool:
    return store.con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'text_encoders'"
    ).fetchall()[0][0] > 0


def _read_only(store: Store) -> bool:
    return bool(store.con.execute(
        "SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()[0][0])


def shop_text_encoder(store: Store, choice: str | None = None) -> TextEncoder:
    """The store's encoder: the newest stored one, else fitted now on the store's texts and
    stored (a read-only store, or one whose schema predates the table, gets it fitted in memory:
    the fit is deterministic, so the same texts give the same encoder).

    ``choice`` is ``[text] encoder`` of churnguard.toml: ``"use"`` gives the multilingual USE for
    every text (nothing fitted, nothing stored); ``"bilingual"`` or None the store's encoder as
    above. Callers without the project's settings (the sequence caches) pass None.
    """
    if choice is not None and choice not in ENCODERS:
        raise ValueError(f"unknown text encoder {choice!r}; one of {', '.join(ENCODERS)}")
    if choice == "use":
        return TextEncoder(use=True)
    if _has_table(store):
        row = store.con.execute(
            "SELECT encoder_id FROM text_encoders ORDER BY fitted_at DESC, encoder_id LIMIT 1"
        ).fetchall()
        if row:
            encoder_id = row[0][0]
            if encoder_id not in _LOADED:
                payload = store.con.execute(
                    "SELECT payload FROM text_encoders WHERE encoder_id = ?", [encoder_id]
                ).fetchall()[0][0]
                _LOADED[encoder_id] = ChineseEncoder.from_bytes(bytes(payload))
            return TextEncoder(zh=_LOADED[encoder_id])
    texts = [r[0] for r in store.con.execute(_TEXTS_SQL).fetchall()]
    encoder = fit_text_encoder(texts)
    if encoder.zh is not None and _has_table(store) and not _read_only(store):
        store.con.execute(
            "INSERT INTO text_encoders VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [encoder.zh.encoder_id, KIND, dt.datetime.now(dt.UTC).replace(tzinfo=None),
             encoder.zh.n_texts, encoder.zh.to_bytes()])
    return encoder
