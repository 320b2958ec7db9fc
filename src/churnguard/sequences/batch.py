"""Ragged event sequences, and the one place they are padded into tensors.

:class:`EventSequences` holds many customers' tokens back to back (``offsets`` marks where each
customer's events start), the compact layout of the on-disk cache. :func:`pad_spans` turns chosen
spans of it into a :class:`PaddedBatch` -- right-padded tensors that carry their ``lengths``
(STYLE.md #8, after pytorch-lifestream's ``PaddedBatch(payload, length)``); every mask is derived
from the lengths by :attr:`PaddedBatch.mask` and nowhere else.

>>> import numpy as np
>>> seqs = EventSequences.empty(3)
>>> batch = pad(seqs, np.arange(3))
>>> batch.lengths.tolist(), tuple(batch.mask.shape)
([0, 0, 0], (3, 1))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np

from churnguard.sequences.tokens import CATEGORICAL_FIELDS, CONTINUOUS_FIELDS, TEXT_DIM

if TYPE_CHECKING:  # torch is imported on first use: snapshots need this module, not torch
    import torch

__all__ = ["EventSequences", "PaddedBatch", "concat", "gather", "length_batches", "pad",
           "pad_spans"]

N_CONTEXT = 2  # log1p(events before the cutoff), log1p(days since the first event)


@dataclass(frozen=True, kw_only=True)
class EventSequences:
    """Tokens of ``n`` customers, oldest event first within each customer.

    ``offsets`` (n + 1,) int64: customer i's events are rows ``offsets[i]:offsets[i + 1]``;
    ``cat`` (E, 6) uint8 codes of :data:`~churnguard.sequences.tokens.CATEGORICAL_FIELDS`;
    ``num`` (E, 3) float16 :data:`~churnguard.sequences.tokens.CONTINUOUS_FIELDS`;
    ``text`` (E,) int32 row of ``text_vectors`` or -1; ``text_vectors`` (T, TEXT_DIM) float32;
    ``context`` (n, 2) float32 per-customer values outside the window: log1p(number of events
    before the cutoff) and log1p(days since the first event); ``text_strings`` (T,) object array
    of str, or None: the texts ``text_vectors`` were encoded from, for models that fine-tune the
    text encoder (:mod:`~churnguard.models.behaviour.text_tuning`).
    """

    offsets: np.ndarray
    cat: np.ndarray
    num: np.ndarray
    text: np.ndarray
    text_vectors: np.ndarray
    context: np.ndarray
    text_strings: np.ndarray | None = None

    def __post_init__(self) -> None:
        n_events = int(self.offsets[-1]) if len(self.offsets) else 0
        shapes = {"cat": (n_events, len(CATEGORICAL_FIELDS)),
                  "num": (n_events, len(CONTINUOUS_FIELDS)), "text": (n_events,),
                  "context": (len(self.offsets) - 1, N_CONTEXT)}
        if self.text_strings is not None:
            shapes["text_strings"] = (len(self.text_vectors),)
        for name, shape in shapes.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"EventSequences.{name} has shape "
                                 f"{tuple(getattr(self, name).shape)}, expected {shape}")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def empty(cls, n: int) -> EventSequences:
        """``n`` customers without events."""
        return cls(offsets=np.zeros(n + 1, dtype=np.int64),
                   cat=np.zeros((0, len(CATEGORICAL_FIELDS)), dtype=np.uint8),
                   num=np.zeros((0, len(CONTINUOUS_FIELDS)), dtype=np.float16),
                   text=np.zeros(0, dtype=np.int32),
                   text_vectors=np.zeros((0, TEXT_DIM), dtype=np.float32),
                   context=np.zeros((n, N_CONTEXT), dtype=np.float32),
                   text_strings=np.zeros(0, dtype=object))

    def take(self, rows: np.ndarray, *, max_len: int | None = None) -> EventSequences:
        """The customers ``rows`` (in that order), each cut to its newest ``max_len`` events,
        as a new, in-memory EventSequences."""
        rows = np.asarray(rows, dtype=np.int64)
        return gather([self], np.zeros(len(rows), dtype=np.int64), rows, max_len=max_len)


def _positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat positions of the spans [starts[i], starts[i] + lengths[i]), back to back."""
    lengths = np.asarray(lengths, dtype=np.int64)
    first = np.cumsum(lengths) - lengths
    return (np.arange(int(lengths.sum()), dtype=np.int64)
            + np.repeat(np.asarray(starts, dtype=np.int64) - first, lengths))


def _span_positions(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat source positions of spans [start, end) and the row each belongs to."""
    lengths = (ends - starts).astype(np.int64)
    return _positions(starts, lengths), np.repeat(np.arange(len(lengths)), lengths)


def gather(sources: Sequence[EventSequences], source: np.ndarray, rows: np.ndarray, *,
           max_len: int | None = None) -> EventSequences:
    """Customer i of the result is customer ``rows[i]`` of ``sources[source[i]]`` (``rows[i]``
    = -1: a customer without events), cut to its newest ``max_len`` events. Each event is
    copied once, straight from the (possibly memory-mapped) sources; text tables are merged.

    >>> a, b = EventSequences.empty(2), EventSequences.empty(1)
    >>> len(gather([a, b], np.array([1, 0, 0]), np.array([0, 1, -1])))
    3
    """
    source = np.asarray(source, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    if source.shape != rows.shape:
        raise ValueError(f"gather: source {source.shape} and rows {rows.shape} differ in shape")
    n = len(rows)
    starts, ends = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    context = np.zeros((n, N_CONTEXT), dtype=np.float32)
    picks = []
    for k, seqs in enumerate(sources):
        pick = np.flatnonzero((source == k) & (rows >= 0))
        chosen = rows[pick]
        starts[pick], ends[pick] = seqs.offsets[chosen], seqs.offsets[chosen + 1]
        context[pick] = seqs.context[chosen]
        picks.append(pick)
    if max_len is not None:
        starts = np.maximum(starts, ends - int(max_len))
    lengths = ends - starts
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n_events = int(offsets[-1])
    cat = np.zeros((n_events, len(CATEGORICAL_FIELDS)), dtype=np.uint8)
    num = np.zeros((n_events, len(CONTINUOUS_FIELDS)), dtype=np.float16)
    text = np.full(n_events, -1, dtype=np.int32)
    n_vectors = 0
    for seqs, pick in zip(sources, picks):
        if len(pick):
            source_at = _positions(starts[pick], lengths[pick])
            codes = np.take(seqs.text, source_at)
            codes[codes >= 0] += n_vectors
            if len(pick) == n:  # every row from this source: fill front to back, no temporaries
                np.take(seqs.cat, source_at, axis=0, out=cat)
                np.take(seqs.num, source_at, axis=0, out=num)
                text[:] = codes
            else:
                into = _positions(offsets[:-1][pick], lengths[pick])
                cat[into] = np.take(seqs.cat, source_at, axis=0)
                num[into] = np.take(seqs.num, source_at, axis=0)
                text[into] = codes
        n_vectors += len(seqs.text_vectors)
    vectors = [np.asarray(seqs.text_vectors, dtype=np.float32) for seqs in sources]
    strings = None
    if all(seqs.text_strings is not None for seqs in sources):
        strings = np.concatenate([np.asarray(seqs.text_strings, dtype=object)
                                  for seqs in sources] or [np.zeros(0, dtype=object)])
    return EventSequences(offsets=offsets, cat=cat, num=num, text=text,
                          text_vectors=(np.concatenate(vectors) if vectors
                                        else np.zeros((0, TEXT_DIM), dtype=np.float32)),
                          context=context, text_strings=strings)


def concat(parts: Sequence[tuple[EventSequences, np.ndarray]]) -> EventSequences:
    """Chosen customers of several EventSequences, back to back (text tables merged)."""
    sources = [seqs for seqs, _ in parts]
    chosen = [np.asarray(rows, dtype=np.int64) for _, rows in parts]
    source = np.concatenate([np.full(len(r), k, dtype=np.int64) for k, r in enumerate(chosen)]
                            or [np.zeros(0, dtype=np.int64)])
    rows = np.concatenate(chosen or [np.zeros(0, dtype=np.int64)])
    return gather(sources, source, rows)


@dataclass(frozen=True)
class PaddedBatch:
    """Right-padded tokens of B sequences and their lengths.

    ``payload``: ``cat`` (B, L, 6) int64 (0 = padding), ``num`` (B, L, 3) float32, ``text``
    (B, L, TEXT_DIM) float32, ``context`` (B, 2) float32. L is the longest length in the batch,
    at least 1 so that an all-empty batch still has a shape.

    Padded with ``strings=True``, the batch also carries the distinct ``texts`` of its events and
    ``payload["text_index"]`` (B, L) int64, each event's position in ``texts`` (-1: no text), so
    that a network can encode the texts itself.
    """

    payload: dict[str, torch.Tensor]
    lengths: torch.Tensor
    texts: tuple[str, ...] | None = None

    @property
    def mask(self) -> torch.Tensor:
        """(B, L) bool, True at real events."""
        import torch

        width = self.payload["cat"].shape[1]
        return torch.arange(width, device=self.lengths.device)[None, :] < self.lengths[:, None]

    def __len__(self) -> int:
        return int(self.lengths.shape[0])


def pad_spans(seqs: EventSequences, starts: np.ndarray, ends: np.ndarray, *,
              context: np.ndarray | None = None, strings: bool = False) -> PaddedBatch:
    """Pad the event spans [starts[i], ends[i]) (flat positions in ``seqs``) into a batch;
    ``strings``: also the batch's texts (see :class:`PaddedBatch`)."""
    import torch

    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    lengths = ends - starts
    if (lengths < 0).any():
        raise ValueError("pad_spans: some spans end before they start")
    batch, width = len(lengths), max(1, int(lengths.max(initial=0)))
    position, row = _span_positions(starts, ends)
    column = np.arange(len(position), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths,
                                                                   lengths)
    cat = np.zeros((batch, width, seqs.cat.shape[1]), dtype=np.int64)
    num = np.zeros((batch, width, seqs.num.shape[1]), dtype=np.float32)
    text = np.zeros((batch, width, TEXT_DIM), dtype=np.float32)
    cat[row, column] = seqs.cat[position]
    num[row, column] = seqs.num[position]
    text_rows = np.asarray(seqs.text[position])
    has_text = text_rows >= 0
    text[row[has_text], column[has_text]] = seqs.text_vectors[text_rows[has_text]]
    if context is None:
        context = np.zeros((batch, N_CONTEXT), dtype=np.float32)
    payload = {"cat": torch.from_numpy(cat), "num": torch.from_numpy(num),
               "text": torch.from_numpy(text),
               "context": torch.from_numpy(np.asarray(context, dtype=np.float32))}
    texts = None
    if strings:
        if seqs.text_strings is None:
            raise ValueError("pad_spans(strings=True): these sequences keep no texts; build "
                             "them with SequenceCache.at(..., strings=True)")
        used, where = np.unique(text_rows[has_text], return_inverse=True)
        index = np.full((batch, width), -1, dtype=np.int64)
        index[row[has_text], column[has_text]] = where
        payload["text_index"] = torch.from_numpy(index)
        texts = tuple(str(t) for t in np.asarray(seqs.text_strings)[used])
    return PaddedBatch(payload=payload, lengths=torch.from_numpy(lengths), texts=texts)


def pad(seqs: EventSequences, rows: np.ndarray, *, max_len: int | None = None,
        strings: bool = False) -> PaddedBatch:
    """The customers ``rows`` of ``seqs``, each cut to its newest ``max_len`` events, padded
    (``strings``: with the batch's texts, see :class:`PaddedBatch`)."""
    rows = np.asarray(rows, dtype=np.int64)
    starts, ends = seqs.offsets[rows], seqs.offsets[rows + 1]
    if max_len is not None:
        starts = np.maximum(starts, ends - int(max_len))
    return pad_spans(seqs, starts, ends, context=seqs.context[rows], strings=strings)


def length_batches(lengths: np.ndarray, batch_size: int, *,
                   rng: np.random.Generator | None = None,
                   max_tokens: int | None = None) -> list[np.ndarray]:
    """Row indices grouped into batches of similar length (bucketing), so that little of each
    batch is padding. With ``rng`` (training) rows of equal length are shuffled and the batch
    order is random; without it the batches run from shortest to longest.

    ``max_tokens`` also caps rows x longest length (a zero length counts as one): batches of
    short sequences hold up to ``batch_size`` rows, batches of long ones fewer, so the padded
    tensors, and the time and memory a batch takes, stay about the same size.

    >>> [b.tolist() for b in length_batches(np.array([5, 1, 3, 2]), 2)]
    [[1, 3], [2, 0]]
    >>> [b.tolist() for b in length_batches(np.array([5, 1, 3, 2, 1]), 3, max_tokens=6)]
    [[1, 4, 3], [2], [0]]
    """
    lengths = np.asarray(lengths)
    if batch_size < 1 or (max_tokens is not None and max_tokens < 1):
        raise ValueError(f"length_batches: batch_size ({batch_size}) and max_tokens "
                         f"({max_tokens}) must be at least 1")
    if rng is None:
        order = np.argsort(lengths, kind="stable")
    else:
        order = np.lexsort((rng.random(len(lengths)), lengths))
    if max_tokens is None:
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    else:
        width = np.maximum(lengths[order], 1).astype(np.int64)
        batches, start = [], 0
        while start < len(order):
            candidates = width[start:start + batch_size]
            # rows x longest grows with every row added (lengths ascend): the batch is the
            # longest prefix within the budget, and at least one row.
            fits = np.arange(1, len(candidates) + 1) * candidates <= max_tokens
            size = max(1, int(np.argmin(fits)) if not fits.all() else len(candidates))
            batches.append(order[start:start + size])
            start += size
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches
