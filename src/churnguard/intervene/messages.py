"""One message per contacted customer, in English or Chinese, from reviewed templates.

A message is put together from facts the store holds and nothing else: the **angle** chosen by the
customer's top reason (a late delivery opens with an apology, a price-minded customer with the
value of the offer), the **offer** of the chosen action (the coupon's discount from the action
catalogue), and the **recommended items** by title. The customer never sees their risk or the
reason itself: reasons only pick which reviewed opening sentence is used.

Templates are data (:data:`MESSAGE_TEMPLATES`), reviewed once per language; the only slots are
``{discount}`` and ``{items}``, so a message can hold no number or name that the inputs did not
give. Item titles are cleaned first (HTML tags, angle brackets, control and bidi-override
characters removed) because they come from the shop's catalogue, not from us.

>>> rows = [{"action": "coupon_10", "reason_keys": ["low_review", "overdue"],
...          "review_topic": "delivery", "items": ["Eco Kettle 环保水壶"]},
...         {"action": "none", "is_control": True}]
>>> en = compose_messages(rows, lang="en")
>>> print(en[0])
We are sorry your recent delivery did not go as it should. We are keeping a closer eye on your
next order. Here is 10% off your next order. Picked for you: Eco Kettle 环保水壶. Happy shopping!
>>> en[1] is None
True
>>> compose_messages([{"action": "coupon_5", "reason_keys": ["coupons"]}], lang="zh")
['希望您的每一笔订单都物有所值。送您下一笔订单5%的优惠。祝您购物愉快！']
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from churnguard.config import DEFAULT_ACTIONS, NO_ACTION, Action

__all__ = ["ANGLE_OF_REASON", "ANGLES", "LANGS", "MAX_CHARS", "MESSAGE_TEMPLATES",
           "clean_title", "compose_messages", "message_angle", "validate_templates"]

LANGS = ("en", "zh")
ANGLES = ("general", "lapsed", "delivery", "quality", "service", "experience", "price",
          "discovery", "welcome")

# Reason keys (churnguard.explain) -> the angle of the opening sentence. A low review takes its
# angle from the review's topic (explain.reason_context); keys not listed (tenure, order value,
# attributes) say nothing a message should act on, so the next reason decides.
ANGLE_OF_REASON: dict[str, str] = {
    "overdue": "lapsed", "declining": "lapsed", "stopped_browsing": "lapsed",
    "few_orders": "lapsed", "purchase_rhythm": "lapsed",
    "open_tickets": "service", "support_contact": "service",
    "returns": "quality",
    "coupons": "price",
    "narrow_categories": "discovery", "abandoned_carts": "discovery",
    "no_cart_activity": "discovery",
    "new_customer": "welcome",
}  # fmt: skip
_ANGLE_OF_TOPIC = {"delivery": "delivery", "quality": "quality", "price": "price",
                   "service": "service"}

# Reviewed templates. MESSAGE_TEMPLATES[lang][part][key]; the slots are {discount} (a whole or
# one-decimal percentage from the catalogue) and {items} (cleaned titles).
MESSAGE_TEMPLATES: dict[str, dict[str, dict[str, str]]] = {
    "en": {
        "opening": {
            "general": "Thank you for shopping with us.",
            "lapsed": "We would love to see you back.",
            "delivery": "We are sorry your recent delivery did not go as it should. We are "
                        "keeping a closer eye on your next order.",
            "quality": "We are sorry a recent item did not live up to your expectations.",
            "service": "We want every question you had for us fully answered. Our customer "
                       "service team is ready to help.",
            "experience": "Thank you for your feedback. We are sorry your recent experience was "
                          "not what it should be.",
            "price": "We want every order to feel like good value.",
            "discovery": "There is more to discover in our shop.",
            "welcome": "Thank you for joining us.",
        },
        "offer": {
            "coupon": "Here is {discount}% off your next order.",
            "recommendation": "",
            "outreach": "We would like to hear how we can help.",
        },
        "browse": {"any": "Take a look around our shop."},
        "items": {"written": "Picked for you: {items}.", "phone": "You may also like {items}.",
                  "separator": ", "},
        "closing": {"written": "Happy shopping!",
                    "phone": "Is there anything we can help you with today?"},
        "greeting": {"phone": "Hello, this is customer service calling."},
    },
    "zh": {
        "opening": {
            "general": "感谢您一直以来的支持。",
            "lapsed": "期待您再次光临。",
            "delivery": "很抱歉您最近的订单配送不尽如人意，我们会更加用心跟进您的下一笔订单。",
            "quality": "很抱歉最近的商品没有达到您的期望。",
            "service": "我们希望您的每一个问题都得到圆满解答，客服团队随时为您服务。",
            "experience": "感谢您的反馈，很抱歉您最近的购物体验不够理想。",
            "price": "希望您的每一笔订单都物有所值。",
            "discovery": "店里还有更多好物等您发现。",
            "welcome": "感谢您加入我们。",
        },
        "offer": {
            "coupon": "送您下一笔订单{discount}%的优惠。",
            "recommendation": "",
            "outreach": "我们很想了解能为您做些什么。",
        },
        "browse": {"any": "欢迎随时来店里逛逛。"},
        "items": {"written": "为您精选：{items}。", "phone": "也推荐您看看：{items}。", "separator": "、"},
        "closing": {"written": "祝您购物愉快！", "phone": "请问今天有什么可以帮您的吗？"},
        "greeting": {"phone": "您好，这里是客服中心。"},
    },
}
_SLOTS = {("offer", "coupon"): {"discount"}, ("items", "written"): {"items"},
          ("items", "phone"): {"items"}}
_JOIN = {"en": " ", "zh": ""}

# Characters per message: e-mail and app messages, and the script a phone agent reads.
MAX_CHARS: dict[str, int] = {"email": 300, "app": 300, "push": 300, "sms": 300, "phone": 500}
DEFAULT_MAX_CHARS = 300
MAX_TITLE_CHARS = 60
MAX_ITEMS = 3


# -- templates ------------------------------------------------------------------------------------
def validate_templates(templates: Mapping[str, Mapping[str, Mapping[str, str]]]) -> None:
    """Every language has the same parts and keys, and a template uses only its own slots.

    >>> validate_templates(MESSAGE_TEMPLATES)
    >>> bad = {**MESSAGE_TEMPLATES, "zh": {**MESSAGE_TEMPLATES["zh"],
    ...        "offer": {**MESSAGE_TEMPLATES["zh"]["offer"], "coupon": "立减{amount}元"}}}
    >>> validate_templates(bad)
    Traceback (most recent call last):
    ...
    ValueError: template zh/offer/coupon uses slots {'amount'}; allowed: {'discount'}
    """
    missing_lang = [lang for lang in LANGS if lang not in templates]
    if missing_lang:
        raise ValueError(f"templates lack the languages {', '.join(missing_lang)}")
    shape = {part: set(keys) for part, keys in templates["en"].items()}
    if set(shape["opening"]) != set(ANGLES):
        raise ValueError(f"en/opening must have exactly the angles {', '.join(ANGLES)}")
    for lang in LANGS:
        have = {part: set(keys) for part, keys in templates[lang].items()}
        if have != shape:
            raise ValueError(f"templates {lang} and en differ in their parts or keys")
        for part, keys in templates[lang].items():
            for key, text in keys.items():
                if key == "separator":
                    continue
                used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
                allowed = _SLOTS.get((part, key), set())
                if used - allowed:
                    raise ValueError(f"template {lang}/{part}/{key} uses slots {used - allowed}; "
                                     f"allowed: {allowed or '{}'}")


# -- inputs ---------------------------------------------------------------------------------------
_TAG = re.compile(r"<[^>]*>")
_BLOCK = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
# Left-over angle brackets, C0/C1 control characters, zero-width and bidi-override characters.
_UNSAFE = re.compile(r"[<>\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def clean_title(title: object) -> str:
    """A catalogue title made safe for a message: entities decoded; script and style blocks, tags,
    angle brackets, control and bidi characters removed; whitespace collapsed; at most 60
    characters.

    >>> clean_title('<b>Eco</b> Kettle<script>alert(1)</script> &lt;img src=x onerror=y&gt;')
    'Eco Kettle'
    """
    return _clean(str(title))


@functools.lru_cache(maxsize=65_536)  # titles repeat across customers
def _clean(text: str) -> str:
    for _ in range(3):  # "&amp;lt;" needs two rounds to show its bracket
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    text = _BLOCK.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = _UNSAFE.sub(" ", text)
    text = " ".join(text.split())
    if len(text) > MAX_TITLE_CHARS:
        cut = text[: MAX_TITLE_CHARS - 1]
        space = cut.rfind(" ")
        text = (cut[:space] if space > MAX_TITLE_CHARS // 2 else cut).rstrip() + "…"
    return text


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) \
        or value is pd.NA or value is pd.NaT


def _items(value: object, where: str) -> list[str]:
    if _missing(value):
        return []
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"{where}: items must be a list of item titles or a JSON array of "
                             f"them, got {value[:40]!r}") from None
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise ValueError(f"{where}: items must be a list of item titles, got {value!r}")
    titles = []
    for item in value:
        if isinstance(item, Mapping):
            item = item.get("title")
        if _missing(item):
            continue
        title = clean_title(item)
        if title and title not in titles:
            titles.append(title)
    return titles


def _reason_keys(row: Mapping[str, Any]) -> list[str]:
    keys = row.get("reason_keys")
    if isinstance(keys, str):
        keys = [keys]
    elif not isinstance(keys, Iterable):  # absent (None, NaN): read reason_keys_1..k
        numbered = sorted((k for k in row if re.fullmatch(r"reason_keys_\d+", str(k))),
                          key=lambda k: int(str(k).rsplit("_", 1)[1]))
        keys = [row[k] for k in numbered]
    return [str(k) for k in keys if not _missing(k) and str(k)]


def message_angle(reason_keys: Sequence[str], review_topic: str | None = None) -> str:
    """The angle of the opening: from the first reason that has one, else ``general``.

    >>> message_angle(["tenure", "low_review"], "delivery"), message_angle(["coupons"])
    ('delivery', 'price')
    >>> message_angle(["low_review"]), message_angle([])
    ('experience', 'general')
    """
    for key in reason_keys:
        if key == "low_review":
            return _ANGLE_OF_TOPIC.get(review_topic or "", "experience")
        if key in ANGLE_OF_REASON:
            return ANGLE_OF_REASON[key]
    return "general"


def _percent(discount: float) -> str:
    return f"{discount * 100:.1f}".rstrip("0").rstrip(".")


# -- composing ------------------------------------------------------------------------------------
def _fit(parts: list[str], items: list[str], *, lang: str, mode: str, browse: bool, limit: int,
         templates: Mapping[str, Mapping[str, str]]) -> str:
    """Join the parts with as many items as fit in ``limit`` characters (dropping items from the
    end, then the closing sentence). ``browse``: an invitation to look around stands in for an
    empty offer when no item is shown."""
    opening, offer, closing = parts
    join = _JOIN[lang]
    sep = templates["items"]["separator"]
    for k in range(len(items), -1, -1):
        if k:
            middle = templates["items"][mode].format(items=sep.join(items[:k]))
        else:
            middle = templates["browse"]["any"] if browse and not offer else ""
        for tail in (closing, ""):
            text = join.join(p for p in (opening, offer, middle, tail) if p)
            if len(text) <= limit:
                return text
    return text[: limit - 1] + "…"


def compose_messages(rows: pd.DataFrame | Iterable[Mapping[str, Any]], *, lang: str,
                     actions: Sequence[Action] = DEFAULT_ACTIONS, max_items: int = MAX_ITEMS,
                     templates: Mapping[str, Mapping[str, Mapping[str, str]]] = MESSAGE_TEMPLATES
                     ) -> list[str | None]:
    """One message per row, in ``lang`` (``en`` or ``zh``); None for control rows and action
    ``none``.

    A row (a mapping, or a DataFrame row) has ``action`` and optionally ``is_control``,
    ``channel`` (default: the action's), ``items`` (titles, as a list or a JSON array; dicts with
    a ``title`` are read too), ``reason_keys`` (a list) or ``reason_keys_1..k`` (explain.reasons
    output), and ``review_topic`` (explain.reason_context's ``last_review_topic``). Messages for
    e-mail and app stay within 300 characters and phone scripts within 500 (:data:`MAX_CHARS`):
    items that do not fit are left out.
    """
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; use en or zh")
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 0:
        raise ValueError(f"max_items must be a whole number >= 0, got {max_items!r}")
    if templates is not MESSAGE_TEMPLATES:
        validate_templates(templates)
    parts = templates[lang]
    catalogue = {a.name: a for a in actions}
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
    out: list[str | None] = []
    for j, row in enumerate(records):
        where = f"row {j}"
        name = row.get("action")
        control = row.get("is_control")
        if _missing(name) or name == NO_ACTION or (not _missing(control) and bool(control)):
            out.append(None)
            continue
        action = catalogue.get(name)
        if action is None:
            raise ValueError(f"{where}: action {name!r} is not in the action catalogue "
                             f"({', '.join(catalogue)}); pass actions= the project's "
                             f"intervene.actions")
        channel = row.get("channel")
        channel = action.channel if _missing(channel) or not channel else str(channel)
        topic = row.get("review_topic")
        angle = message_angle(_reason_keys(row), None if _missing(topic) else str(topic))
        offer = parts["offer"][action.kind]
        if action.kind == "coupon":
            offer = offer.format(discount=_percent(action.discount))
        opening = parts["opening"][angle]
        phone = channel == "phone"
        if phone:
            opening = _JOIN[lang].join((parts["greeting"]["phone"], opening))
        closing = parts["closing"]["phone" if phone else "written"]
        items = _items(row.get("items"), where)[:max_items]
        limit = MAX_CHARS.get(channel, DEFAULT_MAX_CHARS)
        out.append(_fit([opening, offer, closing], items, lang=lang,
                        mode="phone" if phone else "written", browse=angle != "discovery",
                        limit=limit, templates=parts))
    return out
