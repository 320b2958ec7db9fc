"""Review, ticket and search texts in English and Chinese.

The fixed texts are data (data/texts.toml). Texts are template indices so that millions of
events cost one array of small integers; the writer turns them into strings through a dictionary. A small share of ticket texts carry an
e-mail address or a phone number, so that the product's scrubbing can be tested.
"""

from __future__ import annotations

import tomllib
from importlib import resources

import numpy as np

from churnguard.simulate.catalog import CATEGORY_NOUNS

TOPICS: tuple[str, ...] = ("delivery", "quality", "price", "service")
DELIVERY, QUALITY, PRICE, SERVICE = range(4)

_TEXTS = tomllib.loads((resources.files(__package__) / "data" / "texts.toml")
                      .read_text(encoding="utf-8"))
# REVIEWS[(topic, positive)] = (English templates, Chinese templates), in the file's order
REVIEWS: dict[tuple[int, bool], tuple[tuple[str, ...], tuple[str, ...]]] = {
    (TOPICS.index(topic), sentiment == "positive"): (tuple(texts["en"]), tuple(texts["zh"]))
    for topic, by_sentiment in _TEXTS["reviews"].items()
    for sentiment, texts in by_sentiment.items()
}
TICKETS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    TOPICS.index(topic): (tuple(texts["en"]), tuple(texts["zh"]))
    for topic, texts in _TEXTS["tickets"].items()
}
_NAMES = ("li.wei", "anna.k", "zhang88", "mike_r", "chen.jing", "sara.t")
_DOMAINS = ("example.com", "mail.example.org", "qq.example.cn")


def template_table() -> tuple[list[str], dict[tuple[str, int, bool, bool], np.ndarray]]:
    """All fixed texts and, per (kind, topic, positive, zh), the array of their indices."""
    texts: list[str] = []
    index: dict[tuple[str, int, bool, bool], np.ndarray] = {}

    def add(key: tuple[str, int, bool, bool], group) -> None:
        index[key] = np.arange(len(texts), len(texts) + len(group))
        texts.extend(group)

    for (topic, positive), (en, zh) in REVIEWS.items():
        add(("review", topic, positive, False), en)
        add(("review", topic, positive, True), zh)
    for topic, (en, zh) in TICKETS.items():
        add(("ticket", topic, False, False), en)
        add(("ticket", topic, False, True), zh)
    for c, (nouns_en, nouns_zh) in enumerate(CATEGORY_NOUNS):
        add(("search", c, True, False), [n.lower() for n in nouns_en])
        add(("search", c, True, True), nouns_zh)
    return texts, index


def pick_templates(*, rng: np.random.Generator, index: dict, kind: str, topic: np.ndarray,
                   positive: np.ndarray, zh: np.ndarray) -> np.ndarray:
    """One template index per row for (kind, topic, positive, zh) given per row."""
    out = np.zeros(topic.shape[0], dtype=np.int64)
    u = rng.random(topic.shape[0])
    for (k, t, pos, lang), ids in index.items():
        if k != kind:
            continue
        m = (topic == t) & (positive == pos) & (zh == lang)
        out[m] = ids[np.minimum((u[m] * ids.size).astype(np.int64), ids.size - 1)]
    return out


def with_contact(*, rng: np.random.Generator, base: list[str], zh: np.ndarray) -> list[str]:
    """Append an e-mail address or a phone number to each text (the scrubbing test cases)."""
    out = []
    for text, lang_zh, u, k in zip(base, zh.tolist(), rng.random(len(base)).tolist(),
                                   rng.integers(0, 10**4, len(base)).tolist()):
        if u < 0.5:
            contact = f"{_NAMES[k % len(_NAMES)]}{k % 97}@{_DOMAINS[k % len(_DOMAINS)]}"
        elif lang_zh:
            contact = f"+86 138 {k:04d} {(k * 7919) % 10**4:04d}"
        else:
            contact = f"+1 415-555-{k:04d}"
        out.append(f"{text} 请联系我 {contact}" if lang_zh else f"{text} Contact me at {contact}.")
    return out
