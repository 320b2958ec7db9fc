"""Review topics: the keywords that file a review under a topic, and how a topic reads in a
sentence.

>>> TOPIC_WORDS["en"]["price"]
'the price'
"""

from __future__ import annotations

# Checked in this order; the first topic with a keyword in the text wins. English keywords match
# whole words (so "late" does not match "chocolate"), Chinese ones anywhere. Quality comes before
# price so that "cheap material" is about quality.
TOPIC_KEYWORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "delivery": {
        "en": ("delivery", "delivered", "shipping", "shipped", "late", "delayed", "delay",
               "parcel", "courier", "tracking"),
        "zh": ("快递", "配送", "物流", "送货", "发货", "到货", "延误", "延迟", "包裹"),
    },
    "quality": {
        "en": ("quality", "broken", "broke", "defect", "defective", "damaged", "faulty",
               "material", "stopped working", "does not work", "doesn't work"),
        "zh": ("质量", "坏", "做工", "材质", "瑕疵", "破损"),
    },
    "price": {
        "en": ("price", "prices", "priced", "overpriced", "expensive", "cheaper", "money",
               "worth"),
        "zh": ("价格", "贵", "涨价", "不值", "性价比", "便宜"),
    },
    "service": {
        "en": ("service", "support", "staff", "rude", "customer care"),
        "zh": ("客服", "服务", "态度"),
    },
}
NO_TOPIC = "none"

# How a topic reads inside a sentence ("Left a 1-star review about {topic} on ...").
TOPIC_WORDS: dict[str, dict[str, str]] = {
    "en": {"delivery": "delivery", "quality": "quality", "price": "the price",
           "service": "customer service"},
    "zh": {"delivery": "配送", "quality": "质量", "price": "价格", "service": "服务"},
}
