"""Reviewed reply templates and their slots, filled only from what the store holds.

The templates are data (``templates.toml``), each in English and Chinese, each for one ticket
topic (or ``any``). A slot is one of :data:`SLOTS`; its value comes from the store
(:func:`churnguard.assistant.facts.ticket_facts`) or it has none, and a template with a slot that
has no value is not offered: the assistant never writes a fact it was not given.

>>> t = TEMPLATES["delivery_trace"]
>>> sorted(t.slots)
['order_date', 'order_id']
>>> t.fill("en", {"order_id": "e42", "order_date": "2026-11-30"})[:58]
'Hello, I am sorry that your order e42 of 2026-11-30 has no'
>>> t.fill("en", {"order_id": "e42"}) is None  # no order date in the store: not offered
True
>>> [x.id for x in offered("delivery", "zh", {"order_id": "e42", "order_date": "2026-11-30"})]
['delivery_trace', 'any_order']
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

__all__ = ["LANGS", "SLOTS", "TEMPLATES", "TOPICS", "Template", "offer_phrase", "offered"]

LANGS = ("en", "zh")
TOPICS = ("delivery", "quality", "price", "service")
SLOTS = ("order_id", "order_date", "offer", "offer_sent_date")
_ANY = "any"


@dataclass(frozen=True, kw_only=True)
class Template:
    id: str
    topic: str
    reviewed: str
    text: Mapping[str, str]

    @property
    def slots(self) -> frozenset[str]:
        """The slots its texts use (the same in both languages: checked on load)."""
        return _slots(self.text["en"])

    def fill(self, lang: str, values: Mapping[str, str | None]) -> str | None:
        """The text in ``lang`` with its slots filled, or None when a slot has no value."""
        if any(values.get(slot) in (None, "") for slot in self.slots):
            return None
        return self.text[lang].format(**{slot: values[slot] for slot in self.slots})


def _slots(text: str) -> frozenset[str]:
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


def _load(raw: Mapping) -> tuple[dict[str, Template], dict[str, dict[str, str]]]:
    """Templates and offer phrases from the parsed file; ValueError on any slip a reviewer could
    make (an unknown slot or topic, a language missing, slots that differ between languages)."""
    templates: dict[str, Template] = {}
    for item in raw["template"]:
        tid = item["id"]
        if tid in templates:
            raise ValueError(f"reply template {tid!r} is defined twice")
        if item["topic"] not in (*TOPICS, _ANY):
            raise ValueError(f"reply template {tid!r}: unknown topic {item['topic']!r}")
        text = {lang: item[lang] for lang in LANGS}
        used = {lang: _slots(text[lang]) for lang in LANGS}
        unknown = set().union(*used.values()) - set(SLOTS)
        if unknown:
            raise ValueError(f"reply template {tid!r} uses unknown slots {sorted(unknown)}; "
                             f"allowed: {', '.join(SLOTS)}")
        if used["en"] != used["zh"]:
            raise ValueError(f"reply template {tid!r}: en and zh use different slots")
        templates[tid] = Template(id=tid, topic=item["topic"], reviewed=item["reviewed"],
                                  text=text)
    return templates, raw["offers"]


TEMPLATES, OFFERS = _load(tomllib.loads(
    (resources.files(__package__) / "templates.toml").read_text(encoding="utf-8")))


def offered(topic: str | None, lang: str, values: Mapping[str, str | None]) -> list[Template]:
    """The templates for ``topic`` (then those for any topic) whose slots all have values, in
    the file's order: the first is the recommendation."""
    return [t for t in TEMPLATES.values()
            if t.topic in (topic, _ANY) and t.fill(lang, values) is not None]


def offer_phrase(kind: str, discount: float | None, lang: str) -> str | None:
    """How the plan's offer reads (``None`` for an action kind with nothing to offer).

    >>> offer_phrase("coupon", 0.1, "en"), offer_phrase("outreach", None, "zh")
    ('a 10% coupon for your next order', None)
    """
    phrase = OFFERS.get(kind, {}).get(lang)
    if phrase is None or discount is None:
        return None
    return phrase.format(discount=f"{round(discount * 100):g}%")
