"""Review, ticket and search texts in English and Chinese, written with variety.

A review or ticket is composed from parts (``data/text_parts.toml``): one or two sentences of its
topic and sentiment with slots filled (an intensifier, what was bought, a stretch of days, an
order number), perhaps an opener and a closer, sometimes an off-topic remark, words of the other
language (a Chinese text with "quality" or "so bad" in it, an English one with 谢谢) and typos
(letters swapped, dropped or doubled; Chinese homophones such as 的/得, 快递/快第). Fixed sentences
would make every figure on text meaningless: a nearest neighbour would find the very sentence.

Each (kind, topic, sentiment, language) has :data:`VARIANTS` composed texts, each from its own
random stream seeded by the variant's identity, so the table of texts is the same in every run
and the simulation's random stream is untouched: an event draws one uniform, as it did with fixed
templates, which picks its variant. Texts stay template indices, so millions of events cost one
array of small integers; the writer turns them into strings through a dictionary. A shop of a few
thousand customers sees mostly distinct texts; a large one repeats variants (there are
``VARIANTS`` per key), as real shops repeat "fast delivery, thank you".

The truth of every text (kind, topic, sentiment, language as written: ``zh``, ``en`` or
``mixed``) is known by construction; :func:`text_truth` gives it per review and ticket event
(``truth/texts.parquet``). Tickets are complaints: their sentiment is negative. A small share of
ticket texts carry an e-mail address or a phone number, so that the product's scrubbing can be
tested.

>>> texts, index = template_table()
>>> a = texts[int(index[("review", QUALITY, False, True)][0])]
>>> truth_of(a)[:3]
('review', 'quality', 'negative')
>>> len({texts[int(i)] for i in index[("review", QUALITY, False, True)]}) > VARIANTS // 2
True
"""

from __future__ import annotations

import functools
import random
import re
import tomllib
import zlib
from importlib import resources

import numpy as np
import pyarrow as pa

from churnguard.simulate.catalog import CATEGORY_NOUNS

TOPICS: tuple[str, ...] = ("delivery", "quality", "price", "service")
DELIVERY, QUALITY, PRICE, SERVICE = range(4)
VARIANTS = 256  # composed texts per (kind, topic, sentiment, language)
_VERSION = 1  # part of every variant's seed: bump to rewrite all texts

_PARTS = tomllib.loads((resources.files(__package__) / "data" / "text_parts.toml")
                       .read_text(encoding="utf-8"))
_NAMES = ("li.wei", "anna.k", "zhang88", "mike_r", "chen.jing", "sara.t")
_DOMAINS = ("example.com", "mail.example.org", "qq.example.cn")
# What with_contact appends; text_truth strips it to find the text's truth.
_CONTACT = re.compile(r"( 请联系我 \S.*| Contact me at \S.*)$")

# Probabilities of the composition steps (per text).
_P_SECOND = 0.35  # a second sentence of the same topic and sentiment
_P_OPENER = 0.4
_P_CLOSER = 0.5
_P_NOISE = 0.15  # an off-topic remark
_P_MIXED = {"zh": 0.12, "en": 0.05}  # words of the other language
_P_TYPO = 0.3
_P_LOWER = 0.2  # English written all in lower case
_P_NO_END = 0.15  # final punctuation dropped
_P_REPLY_OPENER = 0.7  # replies (see compose_reply)
_P_REPLY_SECOND = 0.3
_P_REPLY_CLOSER = 0.6


class _Writer:
    """Composes one text from a ``random.Random`` (only ``random()`` is used: stable across
    Python versions)."""

    def __init__(self, r: random.Random) -> None:
        self.r = r

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, options):
        return options[min(int(self.r.random() * len(options)), len(options) - 1)]

    def fill(self, sentence: str, lang: str) -> str:
        slots = _PARTS[lang]["slots"]
        out = re.sub(r"\{(\w+)\}", lambda m: self.pick(slots[m.group(1)]), sentence)
        return out[:1].upper() + out[1:] if lang == "en" else out

    def typo_en(self, text: str) -> str:
        words = text.split(" ")
        long = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) > 3]
        for _ in range(1 + int(self.chance(0.3))):
            if not long:
                break
            i = self.pick(long)
            w = words[i]
            j = 1 + min(int(self.r.random() * (len(w) - 2)), len(w) - 3)
            kind = self.pick(("swap", "drop", "double"))
            if kind == "swap":
                w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
            elif kind == "drop":
                w = w[:j] + w[j + 1:]
            else:
                w = w[:j] + w[j] + w[j:]
            words[i] = w
        return " ".join(words)

    def typo_zh(self, text: str) -> str:
        found = [k for k in _PARTS["typos"]["zh_homophones"] if k in text]
        if not found:
            return text
        k = self.pick(found)
        return text.replace(k, _PARTS["typos"]["zh_homophones"][k], 1)


def compose(*, kind: str, topic: int, positive: bool, zh: bool, variant: int
            ) -> tuple[str, str, str]:
    """One composed text, the language it is written in (``zh``, ``en`` or ``mixed``) and its
    phrasing: the indices of its topic sentences among its key's cores (``"3"``, ``"3+7"``), so
    that an evaluation can hold out whole phrasings, not only texts.

    The same arguments give the same text. Tickets ignore ``positive`` (they are complaints).
    """
    lang = "zh" if zh else "en"
    seed = zlib.crc32(f"{_VERSION}|{kind}|{topic}|{positive}|{lang}|{variant}".encode())
    w = _Writer(random.Random(seed))
    parts = _PARTS[lang]["parts"]
    if kind == "review":
        key = _PARTS[lang]["review"][TOPICS[topic]]["positive" if positive else "negative"]
        openers, closers = parts["openers"], parts[
            "closers_positive" if positive else "closers_negative"]
    else:
        key = _PARTS[lang]["ticket"][TOPICS[topic]]
        openers, closers = parts["ticket_openers"], parts["ticket_closers"]
    cores = key["cores"]
    first = w.pick(range(len(cores)))
    body, phrasing = [w.fill(cores[first], lang)], str(first)
    if w.chance(_P_SECOND):
        second = w.pick(range(len(cores)))
        if second != first:
            body.append(w.fill(cores[second], lang))
            phrasing = f"{first}+{second}"
    if w.chance(_P_OPENER):
        opener = w.fill(w.pick(openers), lang)
        if opener.endswith(","):  # "Well, the parcel ...", not "Well, The parcel ..."
            body[0] = body[0][:1].lower() + body[0][1:]
        body.insert(0, opener)
    if w.chance(_P_CLOSER):
        body.append(w.pick(closers))
    if w.chance(_P_NOISE):
        noise = w.pick(parts["noise"])
        body.insert(0, noise) if w.chance(0.5) else body.append(noise)
    written = lang
    text = (" " if lang == "en" else "").join(body)
    if w.chance(_P_MIXED[lang]):
        text, written = _mix(w, text, lang), "mixed"
    if w.chance(_P_TYPO):
        text = w.typo_en(text) if lang == "en" else w.typo_zh(text)
    if lang == "en" and w.chance(_P_LOWER):
        text = text.lower()
    if w.chance(_P_NO_END):
        text = text.rstrip("。！？.!?")
    return text, written, phrasing


def compose_reply(*, topic: int, zh: bool, variant: int) -> str:
    """The reply that resolved a ticket of ``topic``, in the ticket's language: an opener, one
    or two sentences of the topic (what was done), perhaps a closer. Support writes with care:
    no typos, no mixed language. The same arguments give the same text.

    >>> compose_reply(topic=DELIVERY, zh=False, variant=3) == compose_reply(
    ...     topic=DELIVERY, zh=False, variant=3)
    True
    """
    lang = "zh" if zh else "en"
    w = _Writer(random.Random(zlib.crc32(f"{_VERSION}|reply|{topic}|{lang}|{variant}".encode())))
    parts = _PARTS[lang]["reply_parts"]
    cores = _PARTS[lang]["reply"][TOPICS[topic]]["cores"]
    first = w.pick(range(len(cores)))
    body = [w.fill(cores[first], lang)]
    if w.chance(_P_REPLY_SECOND):
        second = w.pick(range(len(cores)))
        if second != first:
            body.append(w.fill(cores[second], lang))
    if w.chance(_P_REPLY_OPENER):
        body.insert(0, w.pick(parts["openers"]))
    if w.chance(_P_REPLY_CLOSER):
        body.append(w.pick(parts["closers"]))
    return (" " if lang == "en" else "").join(body)


@functools.cache
def _reply_bank() -> tuple[tuple[str, ...], dict[str, str]]:
    """Every composed reply, :data:`VARIANTS` per (topic, language) in the order of
    :data:`TOPICS` then en, zh; and each reply's topic (the first key that wrote it)."""
    texts, topic_of = [], {}
    for topic in range(len(TOPICS)):
        for zh in (False, True):
            for variant in range(VARIANTS):
                text = compose_reply(topic=topic, zh=zh, variant=variant)
                texts.append(text)
                topic_of.setdefault(text, TOPICS[topic])
    return tuple(texts), topic_of


def reply_topic(text: str) -> str:
    """The topic of the ticket a composed reply answers (``KeyError`` if none wrote it)."""
    return _reply_bank()[1][text]


def _mix(w: _Writer, text: str, lang: str) -> str:
    """Words of the other language: Chinese words put in English, or a remark added."""
    mixed = _PARTS["mixed"]
    if lang == "zh":
        swappable = [k for k in mixed["zh_to_en"] if k in text]
        if swappable and w.chance(0.7):
            k = w.pick(swappable)
            return text.replace(k, f" {mixed['zh_to_en'][k]} ", 1).strip()
        return f"{text} {w.pick(mixed['en_remarks_in_zh'])}"
    return f"{text} {w.pick(mixed['zh_remarks_in_en'])}"


@functools.cache
def _bank() -> tuple[tuple[str, ...], dict[tuple[str, int, bool, bool], np.ndarray],
                     dict[str, tuple[str, str, str, str, str]]]:
    """Every composed text, the indices per key, and each text's truth.

    A text composed for two different keys (rare: short sentences) is recomposed with the next
    variant number until it is unique to its key, so that a text's truth is one.
    """
    texts: list[str] = []
    index: dict[tuple[str, int, bool, bool], np.ndarray] = {}
    truth: dict[str, tuple[str, str, str, str, str]] = {}
    keys = [("review", t, pos, zh) for t in range(len(TOPICS)) for pos in (True, False)
            for zh in (False, True)]
    keys += [("ticket", t, False, zh) for t in range(len(TOPICS)) for zh in (False, True)]
    for kind, topic, positive, zh in keys:
        start = len(texts)
        sentiment = "positive" if positive else "negative"
        extra = VARIANTS
        for variant in range(VARIANTS):
            v = variant
            while True:
                text, written, phrasing = compose(kind=kind, topic=topic, positive=positive, zh=zh,
                                        variant=v)
                held = truth.get(text)
                if held is None or held[:3] == (kind, TOPICS[topic], sentiment):
                    break
                v, extra = extra, extra + 1
            truth[text] = (kind, TOPICS[topic], sentiment, written, phrasing)
            texts.append(text)
        index[(kind, topic, positive, zh)] = np.arange(start, len(texts))
    return tuple(texts), index, truth


def truth_of(text: str) -> tuple[str, str, str, str, str]:
    """(kind, topic, sentiment, language as written, phrasing) of a composed text (``KeyError``
    if the composer did not write it)."""
    return _bank()[2][text]


def template_table() -> tuple[list[str], dict[tuple[str, int, bool, bool], np.ndarray]]:
    """All texts and, per (kind, topic, positive, zh), the array of their indices.

    Search queries are the category nouns (a search has no topic or sentiment); replies
    (kind ``reply``, see :func:`compose_reply`) follow them.
    """
    bank, bank_index, _ = _bank()
    texts = list(bank)
    index = dict(bank_index)

    def add(key: tuple[str, int, bool, bool], group) -> None:
        index[key] = np.arange(len(texts), len(texts) + len(group))
        texts.extend(group)

    for c, (nouns_en, nouns_zh) in enumerate(CATEGORY_NOUNS):
        add(("search", c, True, False), [n.lower() for n in nouns_en])
        add(("search", c, True, True), nouns_zh)
    # Replies come last, so that the indices of every other text stay as they were.
    replies = _reply_bank()[0]
    for k, (topic, zh) in enumerate((t, z) for t in range(len(TOPICS)) for z in (False, True)):
        add(("reply", topic, False, zh), list(replies[k * VARIANTS:(k + 1) * VARIANTS]))
    return texts, index


def pick_templates(*, rng: np.random.Generator, index: dict, kind: str, topic: np.ndarray,
                   positive: np.ndarray, zh: np.ndarray) -> np.ndarray:
    """One text index per row for (kind, topic, positive, zh) given per row (one uniform per
    row from ``rng`` picks the variant)."""
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


def text_truth(events: pa.Table) -> pa.Table:
    """Per review and support ticket event: event_id, user_id, ts, kind, topic, sentiment,
    language (as written), phrasing (see :func:`compose`) and whether contact details were
    appended (``truth/texts.parquet``).

    Raises ``KeyError`` for a review or ticket text the composer did not write.
    """
    types = events.column("type").to_pylist()
    keep = [i for i, t in enumerate(types) if t in ("review", "support_ticket")]
    table = events.take(pa.array(keep, pa.int64()))
    kinds, topics, sentiments, languages, phrasings, contact = [], [], [], [], [], []
    for text in table.column("text").to_pylist():
        base = _CONTACT.sub("", text)
        kind, topic, sentiment, language, phrasing = truth_of(base)
        kinds.append(kind)
        topics.append(topic)
        sentiments.append(sentiment)
        languages.append(language)
        phrasings.append(phrasing)
        contact.append(base != text)
    return pa.table({
        "event_id": table.column("event_id"),
        "user_id": table.column("user_id"),
        "ts": table.column("ts"),
        "kind": pa.array(kinds, pa.string()),
        "topic": pa.array(topics, pa.string()),
        "sentiment": pa.array(sentiments, pa.string()),
        "language": pa.array(languages, pa.string()),
        "phrasing": pa.array(phrasings, pa.string()),
        "has_contact": pa.array(contact, pa.bool_()),
    })


def ticket_truth(events: pa.Table) -> pa.Table:
    """Per support ticket: its event, thread (``session_id``), topic and language as written,
    whether it was resolved in the window, and the resolution's event, time and reply topic
    (``truth/tickets.parquet``). A ticket and its resolution share the thread id.

    Raises ``KeyError`` for a ticket text or reply the composer did not write.
    """
    import pandas as pd

    frame = events.select(["event_id", "user_id", "ts", "type", "text", "session_id"]).to_pandas()
    tickets = frame[frame["type"] == "support_ticket"].drop(columns="type")
    replies = frame[frame["type"] == "ticket_resolved"][
        ["user_id", "session_id", "event_id", "ts", "text"]].rename(
        columns={"event_id": "resolved_event_id", "ts": "resolved_at", "text": "reply"})
    merged = tickets.merge(replies, on=["user_id", "session_id"], how="left")
    truth = [truth_of(_CONTACT.sub("", t)) for t in merged["text"]]
    return pa.table({
        "event_id": pa.array(merged["event_id"], pa.string()),
        "user_id": pa.array(merged["user_id"], pa.string()),
        "ts": pa.array(merged["ts"]),
        "thread_id": pa.array(merged["session_id"], pa.string()),
        "topic": pa.array([x[1] for x in truth], pa.string()),
        "language": pa.array([x[3] for x in truth], pa.string()),
        "status": pa.array(np.where(merged["resolved_event_id"].notna(), "resolved", "open"),
                           pa.string()),
        "resolved_event_id": pa.array(merged["resolved_event_id"], pa.string()),
        "resolved_at": pa.array(merged["resolved_at"]),
        "reply_topic": pa.array([None if pd.isna(r) else reply_topic(r) for r in merged["reply"]],
                                pa.string()),
    })


def complaint_topics(texts: list[str]) -> np.ndarray:
    """Per text: the index of its topic in :data:`TOPICS` when it is a complaint (a negative
    review or a ticket, contact details allowed), else -1 (positive reviews, searches, replies)."""
    out = np.full(len(texts), -1, dtype=np.int64)
    truth = _bank()[2]
    for j, text in enumerate(texts):
        found = truth.get(_CONTACT.sub("", text))
        if found is not None and found[2] == "negative":
            out[j] = TOPICS.index(found[1])
    return out
