"""Sentiment of reviews and tickets, learned per language from the shop's own rated reviews.

A review rated 1–2★ is negative and 4–5★ positive (3★ teach nothing: mixed feelings). Per
language (by majority script, as the text encoders route texts: ``zh`` for mostly Chinese texts,
``en`` for the rest), a logistic regression on n-gram TF-IDF beside the text's sentence vector
(the ``[text] encoder``'s, when one is given) learns P(negative), calibrated by Platt scaling on 5
cross-fitted folds (:class:`~sklearn.calibration.CalibratedClassifierCV`), so that "0.8
negative" means four in five such texts are complaints. The same model reads tickets. The
n-grams know the shop's own words; the sentence vector carries meaning to phrasings the shop's
reviews never used (on the simulator's unseen phrasings, macro-F1 0.78 → 0.83 in Chinese and
0.75 → 0.89 in English with USE vectors beside the n-grams, from about 1,200 reviews each).

- Chinese terms: characters and their adjacent pairs, Latin words whole
  (:func:`churnguard.text.chinese.terms`): negations like 不好 and 不错 are pairs.
- English terms: words and word pairs ("not good"), plus character 2–4-grams within words, which
  read typos ("quuite", "agian") and inflections.

Beside the learned model, the language's maintained package (below) reads every text too: its
score and the learned model's are combined by a logistic regression fitted on the learned
model's out-of-fold predictions of the rated reviews (stacking, :class:`Stacked`; the
combiner is Platt scaling of both scores at once, so the result stays calibrated). The stack is
kept only when 5-fold cross-validation on the shop's own rated reviews gives it a lower log
loss than the learned model alone, Platt-scaled on the same folds; otherwise the learned model
is used as above. The package was trained on other texts than the shop's, so it errs
differently: on the simulator's unseen Chinese phrasings, macro-F1 0.81 → 0.92 with snownlp
stacked (benchmarks/RESULTS.md "voice").

With fewer than ``min_rated`` rated reviews in a language, or a smaller class under a quarter
of that, the language's sentiment comes from the package alone:
snownlp (a naive Bayes model trained on Chinese product reviews) for Chinese, VADER (Hutto and
Gilbert 2014, a lexicon and rules for English social-media text) for English. Their scores are not
calibrated to the shop: P(negative) is 1 − snownlp's positive probability, and (1 − VADER's
compound) / 2. Every prediction says its source (``learned``, ``learned+snownlp``,
``learned+vader``, ``snownlp``, ``vader``), and :meth:`SentimentModel.sources` says how many
rated reviews taught it and what the cross-validation chose.

>>> texts = ["great, love it", "terrible, broke", "love it so much", "broke after a day"] * 40
>>> model = fit_sentiment(texts, [5, 1, 4, 2] * 40, min_rated=20)
>>> model.sources()["en"]  # doctest: +ELLIPSIS
'learned from 160 rated reviews, stacked with vader (cross-validated log loss ...)'
>>> model.predict(["love it"])[["sentiment", "source"]].values.tolist()
[['positive', 'learned+vader']]
>>> fit_sentiment(texts, [5, 1, 4, 2] * 40, min_rated=20, stack=False).sources()["en"]
'learned from 160 rated reviews'
>>> fit_sentiment(texts[:8], [5, 1, 4, 2] * 2, min_rated=20).sources()["en"]
'vader (8 rated reviews, fewer than 20)'
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churnguard.text.chinese import terms as chinese_terms
from churnguard.text.language import chinese_majority

__all__ = ["LANGUAGES", "LanguageSentiment", "Learned", "SentimentModel", "StackChoice",
           "Stacked", "fit_sentiment", "rated_labels", "route_language"]

LANGUAGES = ("zh", "en")
NEGATIVE_STARS = (1, 2)
POSITIVE_STARS = (4, 5)
MIN_CLASS_SHARE = 0.25  # of min_rated: the smaller class must have at least this many
CALIBRATION_FOLDS = 5
# The stack is kept when its cross-validated log loss is lower than the learned model's by more
# than this share of it: a smaller difference is taken for noise (the simpler model stays).
STACK_MIN_GAIN = 0.01
STACK_CLIP = 1e-4  # probabilities clipped before the logit (snownlp says 1.0 of many texts)


def route_language(texts: Sequence[str | None]) -> np.ndarray:
    """``zh`` for mostly Chinese texts, ``en`` for the rest (as the encoders route them).

    >>> route_language(["快递太慢 so bad", "so very bad 差评", None]).tolist()
    ['zh', 'en', 'en']
    """
    return np.where(chinese_majority(texts), "zh", "en").astype(object)


def rated_labels(ratings: Sequence[float | None]) -> np.ndarray:
    """1 for a negative rating (1–2★), 0 for a positive one (4–5★), -1 for the rest.

    >>> rated_labels([1, 2, 3, 4, 5, None]).tolist()
    [1, 1, -1, 0, 0, -1]
    """
    r = pd.to_numeric(pd.Series(list(ratings), dtype=object), errors="coerce").to_numpy(float)
    out = np.full(len(r), -1, dtype=np.int64)
    out[np.isin(r, NEGATIVE_STARS)] = 1
    out[np.isin(r, POSITIVE_STARS)] = 0
    return out


def _english_features() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    return FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                  token_pattern=r"(?u)\b\w[\w']*\b")),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2,
                                  sublinear_tf=True)),
    ])


def _chinese_features() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer=chinese_terms, min_df=2, sublinear_tf=True)


def _calibrated_classifier(*, calibrate: bool = True) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    classifier = LogisticRegression(C=4.0, max_iter=3000)
    if not calibrate:
        return classifier
    # The folds are fixed (no shuffle): the same reviews give the same model.
    return CalibratedClassifierCV(classifier, method="sigmoid",
                                  cv=StratifiedKFold(n_splits=CALIBRATION_FOLDS))


@dataclass(frozen=True, eq=False)
class Learned:
    """A fitted learner: the n-gram vectorizer and the calibrated classifier on
    [n-grams, sentence vector]."""

    vectorizer: Any
    classifier: Any

    @classmethod
    def fit(cls, language: str, texts: Sequence[str], vectors: np.ndarray | None,
            y: np.ndarray, *, calibrate: bool = True) -> Learned:
        vectorizer = (_chinese_features() if language == "zh" else _english_features()).fit(
            list(texts))
        learned = cls(vectorizer, _calibrated_classifier(calibrate=calibrate))
        learned.classifier.fit(learned._features(texts, vectors), y)
        return learned

    def _features(self, texts: Sequence[str], vectors: np.ndarray | None) -> Any:
        import scipy.sparse as sp

        grams = self.vectorizer.transform(list(texts))
        if vectors is None:
            return grams
        return sp.hstack([grams, sp.csr_matrix(np.asarray(vectors, np.float64))]).tocsr()

    def p_negative(self, texts: Sequence[str], vectors: np.ndarray | None) -> np.ndarray:
        return self.classifier.predict_proba(self._features(texts, vectors))[:, 1]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), STACK_CLIP, 1.0 - STACK_CLIP)
    return np.log(p / (1.0 - p))


@dataclass(frozen=True, eq=False)
class Stacked:
    """The learned model beside the maintained package: a logistic regression on [logit of the
    learned P(negative), logit of the package's], fitted on the learned model's out-of-fold
    predictions of the rated reviews (Wolpert 1992, "Stacked generalization"; the second
    level's logistic regression is Platt's scaling of both scores at once)."""

    learned: Learned  # uncalibrated, fitted on all the rated reviews
    combiner: Any  # sklearn LogisticRegression on the two logits
    language: str

    def p_negative(self, texts: Sequence[str], vectors: np.ndarray | None) -> np.ndarray:
        x = np.column_stack([_logit(self.learned.p_negative(texts, vectors)),
                             _logit(_fallback_p_negative(self.language, texts))])
        return self.combiner.predict_proba(x)[:, 1]


@dataclass(frozen=True)
class StackChoice:
    """How the stack was chosen: the cross-validated log loss on the shop's rated reviews of
    the learned model alone and of the stack (lower is better), and which was taken."""

    log_loss_learned: float
    log_loss_stacked: float
    stacked: bool


def _choose_stack(language: str, texts: Sequence[str], vectors: np.ndarray | None,
                  y: np.ndarray) -> tuple[np.ndarray, np.ndarray, StackChoice]:
    """Out-of-fold logits of the learned model and the package's logits on the rated reviews,
    and the choice: the stack when its cross-validated log loss is below that of the learned
    model alone (both Platt-scaled by a logistic regression on the same folds) by more than
    :data:`STACK_MIN_GAIN` of it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(n_splits=CALIBRATION_FOLDS)  # fixed: same reviews, same choice
    oof = np.zeros(len(texts))
    for fit, held in folds.split(np.zeros(len(y)), y):
        model = Learned.fit(language, [texts[i] for i in fit],
                            None if vectors is None else vectors[fit], y[fit], calibrate=False)
        oof[held] = model.p_negative([texts[i] for i in held],
                                     None if vectors is None else vectors[held])
    both = np.column_stack([_logit(oof), _logit(_fallback_p_negative(language, texts))])
    losses = []
    for x in (both[:, :1], both):
        p = cross_val_predict(LogisticRegression(), x, y, cv=folds,
                              method="predict_proba")[:, 1]
        losses.append(float(log_loss(y, p, labels=[0, 1])))
    return both, y, StackChoice(losses[0], losses[1],
                                losses[1] < losses[0] * (1.0 - STACK_MIN_GAIN))


@functools.cache
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@functools.lru_cache(maxsize=100_000)
def _snownlp_p_negative(text: str) -> float:
    # snownlp reads nothing from an empty text (and fails on it): neutral 0.5. Kept per text:
    # it takes milliseconds a text, and a stack reads the same texts when fitting and after.
    if not text.strip():
        return 0.5
    from snownlp import SnowNLP

    return 1.0 - SnowNLP(text).sentiments


def _fallback_p_negative(language: str, texts: Sequence[str]) -> np.ndarray:
    if language == "zh":
        return np.array([_snownlp_p_negative(t) for t in texts], dtype=float)
    vader = _vader()
    return np.array([(1.0 - vader.polarity_scores(t)["compound"]) / 2.0 for t in texts])


@dataclass(frozen=True, eq=False)
class LanguageSentiment:
    """The sentiment of one language: ``pipeline`` learned, or None for the fallback."""

    language: str
    n_rated: int
    min_rated: int
    pipeline: Learned | Stacked | None = None
    stack: StackChoice | None = None  # None: not tried (fallback, or stacking off)

    @property
    def package(self) -> str:
        return "snownlp" if self.language == "zh" else "vader"

    @property
    def stacked(self) -> bool:
        return isinstance(self.pipeline, Stacked)

    @property
    def label(self) -> str:
        """The source of each prediction: ``learned``, ``learned+snownlp`` (or ``+vader``:
        stacked), or the package's name (the fallback)."""
        if self.pipeline is None:
            return self.package
        return f"learned+{self.package}" if self.stacked else "learned"

    @property
    def source(self) -> str:
        if self.pipeline is None:
            return (f"{self.package} ({self.n_rated:,} rated reviews, fewer than "
                    f"{self.min_rated:,})")
        learned = f"learned from {self.n_rated:,} rated reviews"
        if self.stack is None:
            return learned
        c = self.stack
        how = (f"cross-validated log loss {c.log_loss_stacked:.3f} against "
               f"{c.log_loss_learned:.3f} alone")
        if self.stacked:
            return f"{learned}, stacked with {self.package} ({how})"
        return f"{learned} (stacking with {self.package} not better: {how})"

    @property
    def learned(self) -> bool:
        return self.pipeline is not None

    def p_negative(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros(0)
        if self.pipeline is None:
            return np.clip(_fallback_p_negative(self.language, texts), 0.0, 1.0)
        return self.pipeline.p_negative(texts, vectors)


@dataclass(frozen=True)
class SentimentModel:
    """One :class:`LanguageSentiment` per language of :data:`LANGUAGES`, and the text encoder
    whose sentence vectors the learned ones read (None: n-grams only)."""

    languages: dict[str, LanguageSentiment]
    encoder: Any = None  # churnguard.text.TextEncoder

    def sources(self) -> dict[str, str]:
        """Where each language's sentiment comes from (shown beside every figure)."""
        return {lang: s.source for lang, s in self.languages.items()}

    def predict(self, texts: Sequence[str | None],
                vectors: np.ndarray | None = None) -> pd.DataFrame:
        """Per text: ``language`` (zh/en by script), ``p_negative``, ``sentiment`` (negative
        when p_negative ≥ 0.5) and ``source``. ``vectors``: the texts' vectors by
        :attr:`encoder`, when the caller has them already."""
        texts = ["" if t is None else str(t) for t in texts]
        language = route_language(texts)
        p = np.zeros(len(texts))
        source = np.empty(len(texts), dtype=object)
        learned = np.isin(language, [lang for lang, m in self.languages.items() if m.learned])
        if self.encoder is None:
            vectors = None
        elif vectors is None and learned.any():
            vectors = self.encoder.encode(texts)  # one call: repeated texts encoded once
        for lang, model in self.languages.items():
            at = np.flatnonzero(language == lang)
            if at.size:
                p[at] = model.p_negative([texts[i] for i in at],
                                         None if vectors is None else vectors[at])
                source[at] = model.label
        return pd.DataFrame({"language": language, "p_negative": p,
                             "sentiment": np.where(p >= 0.5, "negative", "positive"),
                             "source": source})


def fit_sentiment(texts: Sequence[str | None], ratings: Sequence[float | None], *,
                  min_rated: int = 200, encoder: Any = None,
                  calibrate: bool = True, stack: bool = True) -> SentimentModel:
    """Learn each language's sentiment from rated reviews (``texts`` with their star
    ``ratings``; unrated and 3★ ones are not used), or fall back where there are too few.
    ``encoder`` (a :class:`~churnguard.text.TextEncoder`) adds its sentence vectors to the
    n-grams; ``calibrate=False`` leaves out the Platt scaling (to measure what it does).
    ``stack``: try the learned model stacked with the language's package
    (:class:`Stacked`), kept when cross-validation on the rated reviews says it is better
    (:func:`_choose_stack`); ``stack=False`` (or ``calibrate=False``) does not try."""
    texts = ["" if t is None else str(t) for t in texts]
    labels = rated_labels(ratings)
    language = route_language(texts)
    written = np.array([bool(t.strip()) for t in texts], dtype=bool)
    out = {}
    vectors = None
    for lang in LANGUAGES:
        rows = np.flatnonzero((language == lang) & (labels >= 0) & written)
        y = labels[rows]
        smaller = int(min(y.sum(), len(y) - y.sum())) if len(y) else 0
        if len(rows) < min_rated or smaller < MIN_CLASS_SHARE * min_rated \
                or smaller < CALIBRATION_FOLDS:
            out[lang] = LanguageSentiment(lang, len(rows), min_rated)
            continue
        if encoder is not None and vectors is None:
            vectors = encoder.encode(texts)
        mine = [texts[i] for i in rows]
        mine_vectors = None if vectors is None else vectors[rows]
        choice = None
        if stack and calibrate:
            both, y, choice = _choose_stack(lang, mine, mine_vectors, y)
            if choice.stacked:
                from sklearn.linear_model import LogisticRegression

                pipeline = Stacked(Learned.fit(lang, mine, mine_vectors, y, calibrate=False),
                                   LogisticRegression().fit(both, y), lang)
                out[lang] = LanguageSentiment(lang, len(rows), min_rated, pipeline, choice)
                continue
        pipeline = Learned.fit(lang, mine, mine_vectors, y, calibrate=calibrate)
        out[lang] = LanguageSentiment(lang, len(rows), min_rated, pipeline, choice)
    return SentimentModel(out, encoder)
