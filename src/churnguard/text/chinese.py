"""Chinese text as vectors: character 1–2-gram TF-IDF fitted on the shop's own texts, reduced by
a truncated SVD to MiniLM's size.

MiniLM's English vocabulary has few Chinese characters (none of 退款, 快递, 尺码, 质量, 客服, 物流, 退货),
so Chinese reviews become mostly [UNK]. Chinese has no spaces, and single characters and their
pairs carry most of a short text's meaning: character n-gram TF-IDF is the standard strong
baseline for short Chinese text classification (Zhang, Zhao & LeCun 2015, "Character-level
convolutional networks for text classification", NeurIPS, its n-gram TF-IDF baselines). Latin
words inside a Chinese text ("质量 so bad", "app") are whole lower-case tokens; e-mail and web
addresses and digits are dropped (they identify, they do not describe).

Terms are kept when at least :data:`MIN_DF` texts hold them (a fragment of one customer's text
is not kept). Term frequencies are sublinear (1 + log tf), the IDF smooth
(ln((1 + n) / (1 + df)) + 1), rows L2-normalised. A truncated SVD (latent semantic analysis:
Deerwester et al. 1990) fitted on the same texts maps them to :data:`COMPONENTS` dimensions
(fewer when the shop has fewer texts or terms), zero-padded to MiniLM's :data:`DIM`, and the
result is L2-normalised,
so the vectors take MiniLM's place in event tokens and title similarity. Everything fitted is
plain arrays (:meth:`ChineseEncoder.to_bytes`), stored with the project so that scoring
reproduces the vectors exactly.

>>> texts = ["快递太慢了", "物流太慢", "快递很慢", "质量很差", "质量不好", "做工质量差"] * 2
>>> enc = ChineseEncoder.fit(texts)
>>> v = enc.transform(["快递慢", "质量差"])
>>> v.shape
(2, 384)
>>> bool(v[0] @ enc.transform(["物流太慢了"])[0] > v[0] @ enc.transform(["质量不好"])[0])
True
>>> ChineseEncoder.from_bytes(enc.to_bytes()).encoder_id == enc.encoder_id
True
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from churnguard.text.language import CJK
from churnguard.text.minilm import DIM

__all__ = ["MIN_DF", "ChineseEncoder", "TooFewTerms", "terms"]

MIN_DF = 2
# 128 components, not DIM: on the simulator's Chinese texts held-out topic F1 of the nearest
# centroid was the same from 64 to 384 components (0.86-0.87) and that of the nearest neighbour
# best at 64-128 (0.62-0.67 against 0.59 at 384), for a third of the fitting time.
COMPONENTS = 128
N_ITER = 5  # power iterations of the randomized SVD
_SVD_SEED = 20260612  # fixed: a refit on the same texts gives the same encoder
_FORMAT = 1
_RUN = re.compile(f"[{CJK}]+|[A-Za-z]+(?:'[A-Za-z]+)?")
_NOT_WORDS = re.compile(r"\S+@\S+|https?://\S+|www\.\S+")
_CJK_START = re.compile(f"[{CJK}]")


class TooFewTerms(ValueError):
    """The texts share too few terms to fit an encoder on."""


def terms(text: str | None) -> list[str]:
    """The terms of a text: per run of Chinese characters its characters and adjacent pairs,
    per Latin word the word in lower case (one letter words dropped).

    >>> terms("快递太慢 so bad! 请联系 a@b.cn 138")
    ['快', '递', '太', '慢', '快递', '递太', '太慢', 'so', 'bad', '请', '联', '系', '请联', '联系']
    """
    out: list[str] = []
    for run in _RUN.findall(_NOT_WORDS.sub(" ", text or "")):
        if _CJK_START.match(run):
            out.extend(run)
            out.extend(run[i:i + 2] for i in range(len(run) - 1))
        elif len(run) > 1:
            out.append(run.lower())
    return out


@dataclass(frozen=True, eq=False)
class ChineseEncoder:
    """A fitted character n-gram TF-IDF + SVD. Build with :meth:`fit` or :meth:`from_bytes`."""

    vocabulary: tuple[str, ...]
    idf: np.ndarray  # (V,) float32
    components: np.ndarray  # (k, V) float32, k <= DIM
    n_texts: int

    @classmethod
    def fit(cls, texts: Iterable[str]) -> ChineseEncoder:
        """Fit on the distinct ``texts`` (their order does not matter).

        Raises :class:`TooFewTerms` when fewer than two terms occur in :data:`MIN_DF` texts.
        """
        distinct = sorted({t for t in texts if t})
        df = Counter(term for t in distinct for term in set(terms(t)))
        vocabulary = tuple(sorted(term for term, n in df.items() if n >= MIN_DF))
        if len(vocabulary) < 2:
            raise TooFewTerms(f"too few Chinese texts to fit on ({len(distinct)} distinct, "
                             f"{len(vocabulary)} terms in {MIN_DF}+ of them)")
        n = len(distinct)
        idf = np.array([math.log((1 + n) / (1 + df[v])) + 1.0 for v in vocabulary], np.float32)
        unfitted = cls(vocabulary=vocabulary, idf=idf,
                       components=np.zeros((0, len(vocabulary)), np.float32), n_texts=n)
        x = unfitted._tfidf(distinct)
        k = min(COMPONENTS, n - 1, len(vocabulary) - 1)
        from sklearn.decomposition import TruncatedSVD

        svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=N_ITER,
                           random_state=_SVD_SEED).fit(x)
        components = svd.components_.astype(np.float32)
        k = components.shape[0]
        # An SVD vector's sign is arbitrary: fix it (largest entry positive) so refits agree.
        signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
        return cls(vocabulary=vocabulary, idf=idf, components=components * signs[:, None],
                   n_texts=n)

    def _tfidf(self, texts: Sequence[str]) -> sp.csr_matrix:
        lookup = {t: i for i, t in enumerate(self.vocabulary)}
        rows, cols, vals = [], [], []
        for r, text in enumerate(texts):
            counts = Counter(lookup[t] for t in terms(text) if t in lookup)
            for c, tf in counts.items():
                rows.append(r)
                cols.append(c)
                vals.append(1.0 + math.log(tf))
        x = sp.csr_matrix((np.asarray(vals, np.float32), (rows, cols)),
                          shape=(len(texts), len(self.vocabulary)), dtype=np.float32)
        x = x.multiply(self.idf[None, :]).tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        return sp.diags(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0)
                        .astype(np.float32)) @ x

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors (n, DIM); a text with no known term is all zeros."""
        if len(texts) == 0:
            return np.zeros((0, DIM), np.float32)
        reduced = np.asarray(self._tfidf(list(texts)) @ self.components.T, dtype=np.float32)
        out = np.zeros((len(texts), DIM), np.float32)
        out[:, :reduced.shape[1]] = reduced
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)

    @property
    def encoder_id(self) -> str:
        """A fingerprint of what was fitted (16 hex digits)."""
        return hashlib.sha256(self.to_bytes()).hexdigest()[:16]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        meta = json.dumps({"format": _FORMAT, "n_texts": self.n_texts,
                           "vocabulary": list(self.vocabulary)}, ensure_ascii=False)
        np.savez(buffer, meta=np.frombuffer(meta.encode(), np.uint8), idf=self.idf,
                 components=self.components)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> ChineseEncoder:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            if meta["format"] != _FORMAT:
                raise ValueError(f"unknown Chinese encoder format {meta['format']}")
            return cls(vocabulary=tuple(meta["vocabulary"]), idf=z["idf"].astype(np.float32),
                       components=z["components"].astype(np.float32), n_texts=meta["n_texts"])
