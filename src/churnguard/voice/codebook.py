"""Topics as a stable codebook: cluster once, name by keyphrases, assign by nearest centroid.

Fitting (:func:`fit_codebook`): the distinct texts go by script path (``zh`` for mostly Chinese
texts, ``en`` for the rest, as :func:`~churnguard.voice.sentiment.route_language`), and per path a
spherical k-means (k-means on unit vectors, fixed seed, 10 starts) finds ``clusters`` centroids.
More clusters than topics: a shop's texts group by topic *and* sentiment and kind (praise of fast
delivery and complaints of late parcels are different texts about one topic, and tickets read
unlike reviews), so a k of the number of topics would merge groups across topics. A person reads
each cluster's keyphrases and names it in churnguard.toml; two clusters given one name are one
topic.

Keyphrases: class-based TF-IDF of the words of each cluster's texts (a word frequent in this
cluster and rare in the others), words from jieba's segmentation for Chinese (two or more
characters) and lower-case words without stop words for English.

Assigning (:meth:`Codebook.assign`): a text takes its nearest centroid of its path by cosine,
unless its cosine is below the path's floor, set from the fitting texts alone (no labels):
Tukey's lower fence Q1 − ``abstain_iqr`` × IQR of their cosines to their own centroids (1.5, the
textbook outlier rule). Not a low quantile of those cosines: texts phrased in words the fitting
texts never used sit systematically further from the centroids than the fitting texts do, so a
1% quantile abstained on 13–15% of the simulator's unseen phrasings in Chinese (while costing
almost no F1 when not abstaining: the nearest centroid was right for them). The fence abstains
on 5–8% of those and on off-topic remarks ("今天天气真好", "my cat is cute"). A text with no
known term (a zero vector) always abstains. The codebook is stored (table ``topic_codebooks``):
the same text gets the same topic on every run, whatever else was written since.

Refitting (:func:`map_topics`): a new codebook's topics are matched to the old ones path by
path by the Hungarian algorithm on centroid cosine; a matched new topic keeps its old key (and
so the name a person gave it), unmatched ones get new keys, old ones left unmatched retire.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> vectors = np.eye(4, dtype=np.float32).repeat(5, axis=0) + 0.1 * rng.random((20, 4))
>>> texts = [f"{t} {i}" for t in ("late parcel", "it broke", "too pricey", "rude agent")
...          for i in range(5)]
>>> book = fit_codebook(texts, vectors, clusters=4)
>>> topics, _ = book.assign(vectors, ["en"] * 20)
>>> [book.label(t) for t in topics[::5]]
['late / parcel', 'broke', 'pricey', 'agent / rude']
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from churnguard.voice.sentiment import LANGUAGES, route_language

__all__ = ["MATCH_MIN", "Codebook", "fit_codebook", "keyphrases_of", "map_topics", "words"]

N_INIT = 10
MIN_TEXTS_PER_CLUSTER = 5
KEYPHRASES = 3
# Below this centroid cosine a new topic is not the old one: it gets a new key.
MATCH_MIN = 0.5
_FORMAT = 1
_LATIN = re.compile(r"[A-Za-z][A-Za-z']+")
_CJK_WORD = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]{2,}")


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def words(text: str, path: str) -> list[str]:
    """The words keyphrases are made of: for ``zh`` jieba's words of 2+ Chinese characters and
    Latin words; for ``en`` lower-case words of 3+ letters that are not stop words.

    >>> words("The parcel was late, very late", "en")
    ['parcel', 'late', 'late']
    >>> words("快递太慢了，物流很差 so bad", "zh")
    ['快递', '太慢', '物流', '很差', 'so', 'bad']
    """
    if path == "zh":
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)  # it announces building its dictionary
        out = []
        for w in jieba.lcut(text):
            if _CJK_WORD.fullmatch(w):
                out.append(w)
            elif _LATIN.fullmatch(w):
                out.append(w.lower())
        return out
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return [w for w in (m.lower() for m in _LATIN.findall(text))
            if len(w) >= 3 and w not in ENGLISH_STOP_WORDS]


def keyphrases_of(docs: Sequence[Sequence[str]], *, top: int = KEYPHRASES) -> list[tuple[str, ...]]:
    """Class-based TF-IDF (per cluster: the words of all its texts as one document) of word
    lists, ``top`` per cluster (ties by the word). A word's weight in a cluster is its frequency
    there times log(1 + mean words per cluster / its frequency in all clusters).

    >>> keyphrases_of([["late", "parcel", "late"], ["broke", "late"]], top=1)
    [('parcel',), ('broke',)]
    """
    counts = [Counter(d) for d in docs]
    total = Counter()
    for c in counts:
        total.update(c)
    mean_words = max(1.0, sum(total.values()) / max(1, len(counts)))
    out = []
    for c in counts:
        n = max(1, sum(c.values()))
        scored = sorted(c, key=lambda w: (-(c[w] / n) * math.log(1 + mean_words / total[w]), w))
        out.append(tuple(scored[:top]))
    return out


@dataclass(frozen=True, eq=False)
class Codebook:
    """Fitted topics: per topic its key, script path, centroid, keyphrases and size; per path
    the abstain floor. Build with :func:`fit_codebook` or :meth:`from_bytes`."""

    keys: tuple[str, ...]
    paths: tuple[str, ...]
    centroids: np.ndarray  # (k, dim) float32, unit rows
    keyphrases: tuple[tuple[str, ...], ...]
    sizes: tuple[int, ...]
    floors: dict[str, float]
    n_texts: int
    encoder_key: str = ""

    def assign(self, vectors: np.ndarray, paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(topic key or None when abstaining, cosine to the nearest centroid) per row."""
        vectors = _unit(vectors)
        paths = np.asarray(paths, dtype=object)
        topics = np.full(len(vectors), None, dtype=object)
        sims = np.zeros(len(vectors))
        own = np.asarray(self.paths, dtype=object)
        keys = np.asarray(self.keys, dtype=object)
        for path in LANGUAGES:
            rows = np.flatnonzero(paths == path)
            cols = np.flatnonzero(own == path)
            if rows.size == 0 or cols.size == 0:
                continue
            s = vectors[rows] @ self.centroids[cols].T
            best = s.argmax(axis=1)  # ties: the first, so the same on every run
            top = s[np.arange(rows.size), best]
            sims[rows] = top
            ok = (top >= self.floors[path]) & (top > 0)
            topics[rows[ok]] = keys[cols[best[ok]]]
        return topics, sims

    def to_bytes(self) -> bytes:
        meta = {"format": _FORMAT, "keys": list(self.keys), "paths": list(self.paths),
                "keyphrases": [list(k) for k in self.keyphrases], "sizes": list(self.sizes),
                "floors": self.floors, "n_texts": self.n_texts,
                "encoder_key": self.encoder_key}
        buffer = io.BytesIO()
        np.savez(buffer, centroids=self.centroids.astype(np.float32),
                 meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> Codebook:
        with np.load(io.BytesIO(payload)) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            centroids = z["centroids"].astype(np.float32)
        if meta["format"] != _FORMAT:
            raise ValueError(f"codebook format {meta['format']} is not {_FORMAT}")
        return cls(keys=tuple(meta["keys"]), paths=tuple(meta["paths"]), centroids=centroids,
                   keyphrases=tuple(tuple(k) for k in meta["keyphrases"]),
                   sizes=tuple(meta["sizes"]), floors=dict(meta["floors"]),
                   n_texts=meta["n_texts"], encoder_key=meta["encoder_key"])

    @property
    def codebook_id(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()[:16]

    def label(self, key: str | None, names: dict[str, str] | None = None) -> str | None:
        """The name a person gave the topic, else its keyphrases joined ("parcel / late")."""
        if key is None:
            return None
        if names and key in names:
            return names[key]
        return " / ".join(self.keyphrases[self.keys.index(key)])


def _kmeans(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(x)
    centroids = _unit(km.cluster_centers_)
    return centroids, (x @ centroids.T).argmax(axis=1)


def fit_codebook(texts: Sequence[str], vectors: np.ndarray, *, clusters: int = 12,
                 abstain_iqr: float | None = 1.5, seed: int = 0,
                 encoder_key: str = "") -> Codebook:
    """Fit on distinct ``texts`` with their ``vectors`` (rows in the same order): per script
    path ``clusters`` centroids (fewer when the path has fewer than
    :data:`MIN_TEXTS_PER_CLUSTER` texts per cluster), keyed by path and rank of size.
    ``abstain_iqr`` None: no floor (only zero vectors abstain)."""
    texts = list(texts)
    order = np.argsort(np.asarray(texts, dtype=object), kind="stable")  # input order is moot
    texts = [texts[i] for i in order]
    x = _unit(np.asarray(vectors)[order])
    paths = route_language(texts)
    keys, own_paths, cents, phrases, sizes, floors = [], [], [], [], [], {}
    for path in LANGUAGES:
        rows = np.flatnonzero((paths == path) & (np.linalg.norm(x, axis=1) > 0))
        k = min(clusters, rows.size // MIN_TEXTS_PER_CLUSTER)
        if k < 1:
            continue
        centroids, labels = _kmeans(x[rows], k, seed) if k > 1 else (
            _unit(x[rows].mean(axis=0, keepdims=True)), np.zeros(rows.size, dtype=np.int64))
        own = (x[rows] * centroids[labels]).sum(axis=1)
        q1, q3 = np.quantile(own, [0.25, 0.75])
        floors[path] = -1.0 if abstain_iqr is None else float(q1 - abstain_iqr * (q3 - q1))
        counts = np.bincount(labels, minlength=k)
        phr = keyphrases_of([[w for i in np.flatnonzero(labels == c)
                              for w in words(texts[rows[i]], path)] for c in range(k)])
        # Keys by size (then by keyphrases): the same texts give the same keys.
        ranked = sorted(range(k), key=lambda c: (-counts[c], phr[c]))
        for rank, c in enumerate(ranked):
            keys.append(f"{path}{rank + 1:02d}")
            own_paths.append(path)
            cents.append(centroids[c])
            phrases.append(phr[c])
            sizes.append(int(counts[c]))
    dim = x.shape[1] if x.ndim == 2 else 0
    return Codebook(keys=tuple(keys), paths=tuple(own_paths),
                    centroids=np.asarray(cents, np.float32).reshape(len(keys), dim),
                    keyphrases=tuple(phrases), sizes=tuple(sizes), floors=floors,
                    n_texts=len(texts), encoder_key=encoder_key)


def map_topics(old: Codebook, new: Codebook) -> tuple[Codebook, dict[str, str | None]]:
    """``new`` with its topics rekeyed after ``old``'s, and the mapping old key → new key
    (None: the old topic has no counterpart). Per path, the Hungarian algorithm pairs old and
    new centroids for the largest total cosine; a pair under :data:`MATCH_MIN` is no match.
    Unmatched new topics get keys after the highest number either codebook used."""
    from scipy.optimize import linear_sum_assignment

    rekeyed = list(new.keys)
    mapping: dict[str, str | None] = {k: None for k in old.keys}
    for path in LANGUAGES:
        o = [i for i, p in enumerate(old.paths) if p == path]
        n = [i for i, p in enumerate(new.paths) if p == path]
        if not o or not n:
            continue
        sim = old.centroids[o] @ new.centroids[n].T
        rows, cols = linear_sum_assignment(-sim)
        matched = set()
        for r, c in zip(rows, cols):
            if sim[r, c] >= MATCH_MIN:
                rekeyed[n[c]] = old.keys[o[r]]
                mapping[old.keys[o[r]]] = old.keys[o[r]]
                matched.add(n[c])
        used = [int(k[len(path):]) for k in old.keys + new.keys if k.startswith(path)]
        nxt = max(used, default=0) + 1
        for i in n:
            if i not in matched:
                rekeyed[i] = f"{path}{nxt:02d}"
                nxt += 1
    book = Codebook(keys=tuple(rekeyed), paths=new.paths, centroids=new.centroids,
                    keyphrases=new.keyphrases, sizes=new.sizes, floors=new.floors,
                    n_texts=new.n_texts, encoder_key=new.encoder_key)
    return book, mapping
