"""The language of a text by its script: Chinese characters against Latin words.

A Chinese character carries about as much meaning as an English word, so the share counts each
CJK character and each Latin word once (e-mail addresses, web addresses and digits are left out:
a Chinese ticket with a phone number and an address is still Chinese). A text is ``zh`` when at
least :data:`ZH_SHARE` of its units are Chinese, ``en`` when at most :data:`EN_SHARE` are, and
``mixed`` in between; a text with neither (empty, digits, emoji) is ``en``, which sends it to
MiniLM. Which encoder reads a text goes by the majority script (:func:`chinese_majority`), so a
mostly English text with one Chinese word still goes to MiniLM.

>>> detect_languages(["物流很快，包装完好。", "Fast delivery, thank you!", "快递太慢了 so bad",
...                   "Waited hours for support. 无语", "", "质量问题 请联系我 li.wei@example.com"])
['zh', 'en', 'mixed', 'mixed', 'en', 'zh']
>>> chinese_majority(["快递太慢了 so bad", "Waited hours for support. 无语"]).tolist()
[True, False]
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

__all__ = ["EN_SHARE", "LANGUAGES", "ZH_SHARE", "chinese_majority", "chinese_share",
           "detect_languages"]

LANGUAGES: tuple[str, ...] = ("zh", "en", "mixed")
ZH_SHARE = 0.9
EN_SHARE = 0.1
CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{CJK}]")
_LATIN_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_NOT_WORDS = re.compile(r"\S+@\S+|https?://\S+|www\.\S+")


def chinese_share(text: str | None) -> float:
    """Share of Chinese characters among Chinese characters and Latin words (NaN: neither)."""
    text = _NOT_WORDS.sub(" ", text or "")
    cjk = len(_CJK_CHAR.findall(text))
    words = len(_LATIN_WORD.findall(text))
    return cjk / (cjk + words) if cjk + words else float("nan")


def detect_languages(texts: Sequence[str | None]) -> list[str]:
    """``zh``, ``en`` or ``mixed`` per text (see the module docstring)."""
    out = []
    for text in texts:
        share = chinese_share(text)
        if share != share or share <= EN_SHARE:  # NaN: no script at all
            out.append("en")
        elif share >= ZH_SHARE:
            out.append("zh")
        else:
            out.append("mixed")
    return out


def chinese_majority(texts: Sequence[str | None]) -> np.ndarray:
    """True where at least half a text's units are Chinese: the Chinese path reads it."""
    share = np.array([chinese_share(t) for t in texts], dtype=float)
    return np.nan_to_num(share, nan=0.0) >= 0.5
