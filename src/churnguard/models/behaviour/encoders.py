"""Sequence encoders: a customer's event tokens to one vector.

Both encoders share :class:`TokenEmbedding`, which sums one learned vector per categorical field
(one table with per-field offsets, so a token is a single gather), a projection of the text
vector, and an explicit encoding of time: Time2Vec (Kazemi et al. 2019, "Time2Vec: Learning a
Vector Representation of Time", arXiv:1907.05321, eq. 1: one linear and k periodic components
``sin(w_i t + phi_i)``) of the log time gap since the previous event and the log age of the event
before the cutoff. The transformer has no positional embedding: the age encodes position, and
unlike an index it knows that ten events in a day differ from ten events in a year.

* :class:`GRUEncoder` (Cho et al. 2014) -- the control the literature says is hard to beat on
  event sequences (Babaev et al. 2022, CoLES). Right padding cannot reach the state at the last
  real event of a causal recurrent net, so it runs on the padded batch and reads that state.
* :class:`TransformerEncoder` (Vaswani et al. 2017) -- post-LN layers with a key-padding mask
  (PyTorch's fused fast path at inference), pooled as [last real event, masked mean].

A customer without events gets a learned ``empty`` vector. Padding never changes an output
(tests/models/test_behaviour_encoders.py).

>>> import numpy as np, torch
>>> from churnguard.sequences import EventSequences, pad
>>> enc = build_encoder(EncoderConfig(kind="gru", d_model=16)).eval()
>>> tuple(enc(pad(EventSequences.empty(2), np.arange(2))).shape)
(2, 16)
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from churnguard.sequences.batch import N_CONTEXT, PaddedBatch
from churnguard.sequences.tokens import (
    CATEGORICAL_FIELDS,
    CONTINUOUS_FIELDS,
    TEXT_DIM,
    VOCAB_SIZES,
)

# The fused inference path packs padded batches as nested tensors, which PyTorch still calls a
# prototype; the result is exact (tests/models/test_behaviour_encoders.py checks padding).
warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors")

__all__ = ["EncoderConfig", "GRUEncoder", "TokenEmbedding", "TransformerEncoder", "build_encoder"]


class EncoderConfig(BaseModel):
    """Shape of an encoder: ``kind`` ("gru" or "transformer"), width ``d_model``, ``n_layers``,
    ``n_heads`` and feed-forward width ``d_ff`` (transformer), ``dropout``, ``time_dim`` (Time2Vec
    components per time value), ``use_text``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["gru", "transformer"] = "gru"
    d_model: int = Field(default=64, ge=4)
    n_layers: int = Field(default=1, ge=1)
    n_heads: int = Field(default=4, ge=1)
    d_ff: int = Field(default=128, ge=4)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    time_dim: int = Field(default=8, ge=2)
    use_text: bool = True


class Time2Vec(nn.Module):
    """Per input value t: [w_0 t + phi_0, sin(w_1 t + phi_1), ..., sin(w_{k-1} t + phi_{k-1})]."""

    def __init__(self, n_values: int, k: int) -> None:
        super().__init__()
        self.n_values, self.k = n_values, k
        self.weight = nn.Parameter(torch.randn(n_values, k))
        self.phase = nn.Parameter(torch.rand(n_values, k) * 2 * math.pi)

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # (..., n_values) -> (..., n_values * k)
        z = t.unsqueeze(-1) * self.weight + self.phase
        out = torch.cat([z[..., :1], torch.sin(z[..., 1:])], dim=-1)
        return out.flatten(-2)


class TokenEmbedding(nn.Module):
    """Tokens (B, L, ...) to vectors (B, L, d_model)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        d = config.d_model
        sizes = [VOCAB_SIZES[f] for f in CATEGORICAL_FIELDS]
        self.register_buffer("offsets", torch.tensor([sum(sizes[:i]) for i in range(len(sizes))]),
                             persistent=False)
        self.fields = nn.Embedding(sum(sizes), d)
        # log gap and log age through Time2Vec; the "first event" flag directly.
        self.time = Time2Vec(2, config.time_dim)
        self.time_out = nn.Linear(2 * config.time_dim + len(CONTINUOUS_FIELDS) - 2, d)
        self.text = nn.Linear(TEXT_DIM, d, bias=False) if config.use_text else None
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, batch: PaddedBatch) -> torch.Tensor:
        cat, num = batch.payload["cat"], batch.payload["num"]
        x = self.fields(cat + self.offsets).sum(dim=-2)
        # Scaled so that typical log values (0..8) land in a few radians.
        x = x + self.time_out(torch.cat([self.time(num[..., :2] * 0.25), num[..., 2:]], dim=-1))
        if self.text is not None:
            x = x + self.text(batch.payload["text"])
        return self.drop(self.norm(x))


class _Encoder(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = TokenEmbedding(config)
        self.empty = nn.Parameter(torch.zeros(config.d_model))

    @property
    def dim(self) -> int:
        return self.config.d_model

    def _finish(self, pooled: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.where((lengths > 0)[:, None], pooled, self.empty.expand_as(pooled))

    def forward(self, batch: PaddedBatch) -> torch.Tensor:  # (B, d_model)
        return self.encode(batch)[0]

    def encode(self, batch: PaddedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(customer vectors (B, d), per-event states (B, L, d))."""
        raise NotImplementedError


class GRUEncoder(_Encoder):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.rnn = nn.GRU(config.d_model, config.d_model, num_layers=config.n_layers,
                          batch_first=True,
                          dropout=config.dropout if config.n_layers > 1 else 0.0)

    def encode(self, batch: PaddedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        states, _ = self.rnn(self.embedding(batch))
        last = (batch.lengths - 1).clamp(min=0)
        pooled = states[torch.arange(states.shape[0]), last]
        return self._finish(pooled, batch.lengths), states


class TransformerEncoder(_Encoder):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        layer = nn.TransformerEncoderLayer(config.d_model, config.n_heads, config.d_ff,
                                           config.dropout, batch_first=True)
        self.layers = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=True)
        self.pool = nn.Linear(2 * config.d_model, config.d_model)

    def encode(self, batch: PaddedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        mask = batch.mask
        # An empty sequence would mask every key (NaN attention); let it see its padding token,
        # whose output is replaced by ``empty`` below.
        mask = mask | ((batch.lengths == 0)[:, None] & (torch.arange(mask.shape[1]) == 0))
        x = self.embedding(batch)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors")
            states = self.layers(x, src_key_padding_mask=~mask)
        if states.is_nested:
            states = states.to_padded_tensor(0.0, x.shape)
        states = states * mask[..., None]
        mean = states.sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1)
        last = states[torch.arange(states.shape[0]), (batch.lengths - 1).clamp(min=0)]
        pooled = self.pool(torch.cat([last, mean], dim=-1))
        return self._finish(pooled, batch.lengths), states


def build_encoder(config: EncoderConfig) -> _Encoder:
    """A fresh encoder of ``config.kind``."""
    return {"gru": GRUEncoder, "transformer": TransformerEncoder}[config.kind](config)


def context_features(batch: PaddedBatch) -> torch.Tensor:
    """Per-customer values outside the window (B, 2), scaled to about unit size."""
    return batch.payload["context"][:, :N_CONTEXT] * 0.2
