"""Text turned into vectors, below both the event sequences and the models that read them.

:mod:`churnguard.text.minilm` holds the MiniLM-L6 sentence encoder (weights bundled, loaded
offline); :mod:`churnguard.sequences` projects its vectors into event tokens, and
:mod:`churnguard.models.behaviour.text_tuning` fine-tunes a copy of it.
"""

from churnguard.text.minilm import DIM, encode_texts, load_encoder

__all__ = ["DIM", "encode_texts", "load_encoder"]
