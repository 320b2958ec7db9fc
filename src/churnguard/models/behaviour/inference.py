"""Scoring a sequence network fast on the CPU: batching by length, threads, ONNX Runtime.

:func:`embed` runs a network (an encoder, or encoder + head) over every customer of an
:class:`~churnguard.sequences.EventSequences`: customers sorted by length and cut into batches of
about ``max_tokens`` padded events (:func:`~churnguard.sequences.length_batches`; by default
the encoder's ``scoring_tokens``: 16,384 for the GRU, 4,096 for the transformer), under
``torch.inference_mode`` with torch's threads set to the cores, results back in the customers'
order.

The same network runs under ONNX Runtime once exported: :func:`export_onnx` writes it as an ONNX
graph of plain tensors (``cat``, ``num``, ``text``, ``context``, ``lengths``; batch and length
axes dynamic) and :class:`OnnxNetwork` calls it on a :class:`~churnguard.sequences.PaddedBatch`
like the PyTorch module. Its outputs equal PyTorch's within 1e-4
(tests/models/test_behaviour_inference.py), including empty, length-1 and exactly-N histories.
Nothing needs the export: churnguard scores with PyTorch unless a model is built with
``runtime="onnx"``.

>>> import numpy as np
>>> from churnguard.models.behaviour.encoders import EncoderConfig, build_encoder
>>> from churnguard.sequences import EventSequences
>>> encoder = build_encoder(EncoderConfig(kind="gru", d_model=8))
>>> embed(encoder, EventSequences.empty(3), max_len=16).shape
(3, 8)
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from churnguard.models.behaviour.optim import available_cores, denormals_flushed, use_cpu
from churnguard.sequences.batch import EventSequences, PaddedBatch, length_batches, pad

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_MAX_TOKENS", "ONNX_INPUTS", "OnnxNetwork", "embed",
           "export_onnx"]

#: Most customers in one scoring batch, and most padded events (rows x longest length) for a
#: network that does not say (encoders carry ``scoring_tokens``). Measured on 2 cores: smaller
#: batches lose to per-call overhead, larger ones fall out of the caches.
DEFAULT_BATCH_SIZE = 512
DEFAULT_MAX_TOKENS = 16_384
#: The exported graph's inputs, in order: the PaddedBatch payload fields and the lengths.
ONNX_INPUTS = ("cat", "num", "text", "context", "lengths")
ONNX_OPSET = 17


@denormals_flushed()
@torch.inference_mode()
def embed(encoder: nn.Module, seqs: EventSequences, *, max_len: int,
          batch_size: int = DEFAULT_BATCH_SIZE, max_tokens: int | None = None,
          head: Callable[[PaddedBatch], Any] | None = None,
          threads: int | None = None, strings: bool = False) -> np.ndarray:
    """``encoder`` (or ``head``, a function of a batch: the network, or an :class:`OnnxNetwork`)
    over every customer of ``seqs``, each cut to its newest ``max_len`` events; returns float32
    (n, dim) customer vectors, or (n,) for a head with one output.

    ``batch_size`` and ``max_tokens`` (default: ``encoder.scoring_tokens``) bound each batch
    (see :func:`~churnguard.sequences.length_batches`); ``threads``: torch's CPU threads
    (default: every core); ``strings``: pad with the batches' texts, for a network that encodes
    them itself (:mod:`~churnguard.models.behaviour.text_tuning`). ``encoder`` and a ``head``
    that is a module are left in evaluation mode.
    """
    use_cpu(threads)
    # Scoring: no dropout anywhere. A fit scores its validation customers with its network as
    # the head between epochs, while that network is in training mode.
    encoder.eval()
    if isinstance(head, nn.Module):
        head.eval()
    if max_tokens is None:
        max_tokens = getattr(encoder, "scoring_tokens", DEFAULT_MAX_TOKENS)
    lengths = np.minimum(seqs.lengths, max_len)
    run = head or encoder
    out: np.ndarray | None = None
    for rows in length_batches(lengths, batch_size, max_tokens=max_tokens):
        values = np.asarray(run(pad(seqs, rows, max_len=max_len, strings=strings)),
                            dtype=np.float32)
        if out is None:
            out = np.zeros((len(seqs), *values.shape[1:]), dtype=np.float32)
        out[rows] = values
    if out is None:
        dim = getattr(encoder, "dim", 1)
        return np.zeros((0, dim) if head is None else (0,), dtype=np.float32)
    return out


class _PlainInputs(nn.Module):
    """A batch network as a function of plain tensors, the form ONNX export traces."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, cat: torch.Tensor, num: torch.Tensor, text: torch.Tensor,
                context: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        payload = {"cat": cat, "num": num, "text": text, "context": context}
        return self.network(PaddedBatch(payload, lengths))


def _example_batch(text_dim: int) -> tuple[torch.Tensor, ...]:
    """A small batch to trace with: two lengths and an empty history, codes valid for every
    field (1 = absent)."""
    generator = torch.Generator().manual_seed(0)  # leaves torch's global random state alone
    lengths = torch.tensor([3, 1, 0])
    mask = torch.arange(3)[None, :] < lengths[:, None]
    cat = mask[..., None].long().expand(3, 3, 6).contiguous()
    num = torch.rand(3, 3, 3, generator=generator) * mask[..., None]
    text = torch.randn(3, 3, text_dim, generator=generator) * mask[..., None]
    return cat, num, text, torch.rand(3, 2, generator=generator), lengths


def export_onnx(network: nn.Module, path: str | Path | None = None) -> bytes:
    """The ONNX graph (bytes; also written to ``path`` when given) of ``network``, a module of a
    :class:`PaddedBatch` (an encoder, or encoder + head), for scoring with :class:`OnnxNetwork`.

    Inputs :data:`ONNX_INPUTS` with dynamic batch and length axes. It uses PyTorch's
    TorchScript exporter (``dynamo=False``: the torch.export one needs ``onnxscript``, which
    churnguard does not depend on); the network's forward has no Python branch on the data
    when exporting (``torch.onnx.is_in_onnx_export``), so the traced graph holds for every
    batch.
    """
    from churnguard.sequences.tokens import TEXT_DIM  # noqa: PLC0415

    was_training = network.training
    network.eval()
    batch_axes = {0: "batch", 1: "length"}
    dynamic = {"cat": batch_axes, "num": batch_axes, "text": batch_axes,
               "context": {0: "batch"}, "lengths": {0: "batch"}, "output": {0: "batch"}}
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter announces its deprecation and the tracer warns about
            # Python values it cannot see; the graph is checked against PyTorch in the tests.
            warnings.simplefilter("ignore")
            torch.onnx.export(_PlainInputs(network), _example_batch(TEXT_DIM), buffer,
                              dynamo=False, input_names=list(ONNX_INPUTS),
                              output_names=["output"], dynamic_axes=dynamic,
                              opset_version=ONNX_OPSET)
    finally:
        network.train(was_training)
    graph = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(graph)
    return graph


class OnnxNetwork:
    """An exported network (:func:`export_onnx`) in an ONNX Runtime session, called on a
    :class:`PaddedBatch` like the PyTorch module; returns a float32 array.

    ``threads``: intra-op threads (default: every core). The threads sleep between operators
    instead of spinning (``session.intra_op.allow_spinning = 0``), for the reason churnguard
    sets ``OMP_WAIT_POLICY=PASSIVE`` for OpenMP: on shared cores, spinning threads take the
    cores from everything else running there, the other threads of the same scoring included.
    """

    def __init__(self, graph: bytes | str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort  # noqa: PLC0415

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or available_cores())
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = graph if isinstance(graph, bytes) else str(graph)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        # The exporter drops inputs the graph does not read (``text`` without use_text).
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, batch: PaddedBatch) -> np.ndarray:
        fields = {**batch.payload, "lengths": batch.lengths}
        feeds = {name: fields[name].numpy() for name in self.inputs}
        return self.session.run(None, feeds)[0]
