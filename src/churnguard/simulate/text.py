"""Review, ticket and search texts in English and Chinese.

Texts are template indices so that millions of events cost one array of small integers; the
writer turns them into strings through a dictionary. A small share of ticket texts carry an
e-mail address or a phone number, so that the product's scrubbing can be tested.
"""

from __future__ import annotations

import numpy as np

from churnguard.simulate.catalog import CATEGORY_NOUNS

TOPICS: tuple[str, ...] = ("delivery", "quality", "price", "service")
DELIVERY, QUALITY, PRICE, SERVICE = range(4)

# REVIEWS[(topic, positive)] = (English templates, Chinese templates)
REVIEWS: dict[tuple[int, bool], tuple[tuple[str, ...], tuple[str, ...]]] = {
    (DELIVERY, True): (("Arrived a day early, well packed.", "Fast delivery, thank you!",
                        "Shipping was quick and the box was intact."),
                       ("物流很快，包装完好。", "发货速度快，好评！", "提前一天到货，很满意。")),
    (DELIVERY, False): (("Took forever to arrive, over a week late.",
                         "Delivery was late and nobody told me why.",
                         "The parcel was delayed again, very disappointing."),
                        ("快递太慢了，晚了一个多星期。", "送货延迟，也没有任何通知。",
                         "物流又延误了，非常失望。")),
    (QUALITY, True): (("Great quality, works exactly as described.", "Solid build, love it.",
                       "Excellent product, would buy again."),
                      ("质量很好，和描述一致。", "做工扎实，很喜欢。", "产品很棒，会回购。")),
    (QUALITY, False): (("Broke after two days, poor quality.", "Arrived damaged and does not work.",
                        "Cheap material, not as described."),
                       ("用了两天就坏了，质量太差。", "收到就是坏的，不能用。",
                        "材质很差，和描述不符。")),
    (PRICE, True): (("Good value for the price.", "Cheaper than elsewhere, happy with it.",
                     "Great deal with the discount."),
                    ("性价比很高。", "比别家便宜，很满意。", "有优惠，很划算。")),
    (PRICE, False): (("Too expensive since the price went up.", "Not worth the money.",
                      "Prices keep rising, I will look elsewhere."),
                     ("涨价后太贵了。", "不值这个价。", "价格一直涨，准备换别家了。")),
    (SERVICE, True): (("Customer service was friendly and helpful.",
                       "Support solved my issue quickly.", "Very kind staff, thanks."),
                      ("客服态度很好，很耐心。", "客服很快解决了我的问题。", "服务很贴心，谢谢。")),
    (SERVICE, False): (("Customer service never replied.", "Support was rude and unhelpful.",
                        "Waited hours for an answer from support."),
                       ("客服一直不回复。", "客服态度很差。", "等了好几个小时客服才回复。")),
}
TICKETS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    DELIVERY: (("My order has not arrived yet, where is it?",
                "The parcel is late, please check the tracking.",
                "Delivery was promised days ago and still nothing."),
               ("我的订单还没到，请帮忙查一下。", "包裹延误了，请查看物流。",
                "说好几天前送到，现在还没收到。")),
    QUALITY: (("The item arrived broken, I want a refund.",
               "Product is defective, please send a replacement.",
               "It stopped working after one use."),
              ("收到的商品是坏的，我要退款。", "商品有质量问题，请换货。", "只用了一次就坏了。")),
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
