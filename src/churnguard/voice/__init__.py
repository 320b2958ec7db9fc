"""The voice of the customer: what reviews and tickets say, in Chinese and English
(docs/voice.md).

:mod:`churnguard.voice.sentiment` learns sentiment per language from the shop's rated reviews (a
packaged fallback when there are too few); :mod:`churnguard.voice.codebook` holds the topic
codebook (clusters named by keyphrases, nearest centroid with an abstain floor, refits mapped
old to new); :mod:`churnguard.voice.shop` applies both to a store.
"""

from churnguard.voice.codebook import Codebook, fit_codebook, map_topics
from churnguard.voice.sentiment import SentimentModel, fit_sentiment
from churnguard.voice.shop import CodebookStale, shop_codebook, shop_sentiment, voice_texts

__all__ = ["Codebook", "CodebookStale", "SentimentModel", "fit_codebook", "fit_sentiment",
           "map_topics", "shop_codebook", "shop_sentiment", "voice_texts"]
