"""Text turned into vectors, below both the event sequences and the models that read them.

:mod:`churnguard.text.minilm` holds the MiniLM-L6 sentence encoder (weights bundled, loaded
offline); :mod:`churnguard.text.language` tells Chinese, English and mixed texts apart by script;
:mod:`churnguard.text.chinese` is the shop's own character n-gram encoder for Chinese, and
:mod:`churnguard.text.bilingual` routes each text to one or the other (:class:`TextEncoder`,
fitted once per store by :func:`shop_text_encoder`). :mod:`churnguard.sequences` projects the
vectors into event tokens, and :mod:`churnguard.models.behaviour.text_tuning` fine-tunes a copy
of MiniLM.
"""

from churnguard.text.bilingual import TextEncoder, fit_text_encoder, shop_text_encoder
from churnguard.text.language import detect_languages
from churnguard.text.minilm import DIM, encode_texts, load_encoder

__all__ = ["DIM", "TextEncoder", "detect_languages", "encode_texts", "fit_text_encoder",
           "load_encoder", "shop_text_encoder"]
