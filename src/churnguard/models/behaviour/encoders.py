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
* :class:`TransformerEncoder` (Vaswani et al. 2017) -- post-LN layers with a key-padding mask,
  pooled as [last real event, masked mean]. The layers are ``nn.TransformerEncoderLayer``'s
  parameters run by :func:`_post_ln_layer`: one ``F.scaled_dot_product_attention`` per layer
  (PyTorch's fused CPU kernel; no mask at all when a batch has no padding), the same code for
  training, scoring and the ONNX export. On length-bucketed batches this scores faster than
  ``nn.TransformerEncoder``'s nested-tensor fast path (docs/behaviour.md, "Efficiency").

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
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from churnguard.sequences.batch import N_CONTEXT, PaddedBatch
from churnguard.sequences.tokens import (
    CATEGORICAL_FIELDS,
    CONTINUOUS_FIELDS,
    TEXT_DIM,
    VOCAB_SIZES,
)

__all__ = ["EncoderConfig", "GRUEncoder", "TokenEmbedding", "TransformerEncoder", "build_encoder"]


class EncoderConfig(BaseModel):
    """Shape of an encoder: ``kind`` ("gru" or "transformer"), width ``d_model``, ``n_layers``,
    ``n_heads`` and feed-forward width ``d_ff`` (transformer), ``dropout`` (of the token
    embedding, the recurrent layers and the transformer's residual and feed-forward paths),
    ``attention_dropout`` (on the transformer's attention weights; default none: PyTorch's fused
    CPU attention kernel has no dropout, and asking for it falls back to the unfused path, 16x
    slower to train at 256 events), ``time_dim`` (Time2Vec components per time value),
    ``use_text``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["gru", "transformer"] = "gru"
    d_model: int = Field(default=64, ge=4)
    n_layers: int = Field(default=1, ge=1)
    n_heads: int = Field(default=4, ge=1)
    d_ff: int = Field(default=128, ge=4)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    attention_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
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
        ids = cat + self.offsets
        if torch.onnx.is_in_onnx_export():
            # ONNX has no EmbeddingBag; Gather then ReduceSum is the same sum.
            x = self.fields(ids).sum(dim=-2)
        else:
            # One fused gather-and-sum: ~30x less time than gathering (B, L, 6, d) and summing.
            x = F.embedding_bag(ids.reshape(-1, ids.shape[-1]), self.fields.weight,
                                mode="sum").view(*ids.shape[:-1], -1)
        # Scaled so that typical log values (0..8) land in a few radians.
        x = x + self.time_out(torch.cat([self.time(num[..., :2] * 0.25), num[..., 2:]], dim=-1))
        if self.text is not None:
            x = x + self.text(batch.payload["text"])
        return self.drop(self.norm(x))


class _Encoder(nn.Module):
    #: Padded events per scoring batch (rows x longest length) that scored fastest on 2 cores
    #: (benchmarks/bench_behaviour_speed.py); see :func:`~churnguard.sequences.length_batches`.
    scoring_tokens: int = 16_384

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
        return self._finish(_last_event(states, batch.lengths), batch.lengths), states


class TransformerEncoder(_Encoder):
    # Smaller batches than the GRU's: each layer's (B, H, L, L) attention scores stay in cache.
    scoring_tokens = 4_096

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        layer = nn.TransformerEncoderLayer(config.d_model, config.n_heads, config.d_ff,
                                           config.dropout, batch_first=True)
        # A container of the layers' parameters (its state-dict keys are those of saved
        # encoders); :func:`_post_ln_layer` runs them.
        self.layers = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        for each in self.layers.layers:
            each.self_attn.dropout = config.attention_dropout
        self.pool = nn.Linear(2 * config.d_model, config.d_model)

    def encode(self, batch: PaddedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        mask = batch.mask
        # An empty sequence would mask every key (NaN attention); let it see its padding token,
        # whose output is replaced by ``empty`` below.
        mask = mask | ((batch.lengths == 0)[:, None]
                       & (torch.arange(mask.shape[1], device=mask.device) == 0))
        x = self.embedding(batch)
        bias = _attention_bias(mask, x.dtype)
        for layer in self.layers.layers:
            x = _post_ln_layer(layer, x, bias)
        states = x * mask[..., None].to(x.dtype)
        mean = states.sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1).to(x.dtype)
        last = _last_event(states, batch.lengths)
        pooled = self.pool(torch.cat([last, mean], dim=-1))
        return self._finish(pooled, batch.lengths), states


def _last_event(states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, d) state at each sequence's last real event (position 0 when it has none). A gather,
    so the ONNX export holds for any batch size."""
    index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, states.shape[-1])
    return states.gather(1, index).squeeze(1)


def _attention_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """Additive key-padding bias (B, 1, 1, L): 0 at real keys, -inf at padding. None when the
    batch has no padding (common with length bucketing: every customer capped at N has exactly
    N events), which lets attention skip the mask; never None in an ONNX export, whose graph
    must serve every batch."""
    if not torch.onnx.is_in_onnx_export() and bool(mask.all()):
        return None
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return bias.masked_fill(~mask, float("-inf"))[:, None, None, :]


def _post_ln_layer(layer: nn.TransformerEncoderLayer, x: torch.Tensor,
                   bias: torch.Tensor | None) -> torch.Tensor:
    """``layer``'s own computation (post-LN: x = norm1(x + SA(x)); x = norm2(x + FF(x)), Vaswani
    et al. 2017, sec. 3.1), written with ``F.scaled_dot_product_attention`` (sec. 3.2.1) on the
    padded batch. Same parameters, dropout and result as ``layer(x, src_key_padding_mask=...)``
    (tests/models/test_behaviour_inference.py)."""
    attention = layer.self_attn
    heads = attention.num_heads
    d = x.shape[-1]
    qkv = F.linear(x, attention.in_proj_weight, attention.in_proj_bias)
    q, k, v = qkv.unflatten(-1, (3, heads, d // heads)).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, dh)
    drop = attention.dropout if layer.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop)
    out = attention.out_proj(out.transpose(1, 2).flatten(-2))
    x = layer.norm1(x + layer.dropout1(out))
    ff = layer.linear2(layer.dropout(layer.activation(layer.linear1(x))))
    return layer.norm2(x + layer.dropout2(ff))


def build_encoder(config: EncoderConfig) -> _Encoder:
    """A fresh encoder of ``config.kind``."""
    return {"gru": GRUEncoder, "transformer": TransformerEncoder}[config.kind](config)


def context_features(batch: PaddedBatch) -> torch.Tensor:
    """Per-customer values outside the window (B, 2), scaled to about unit size."""
    return batch.payload["context"][:, :N_CONTEXT] * 0.2
