"""Event sequences for the behaviour model: tokens, per-cutoff caches, padded batches.

* :mod:`~churnguard.sequences.tokens` -- how one event becomes a token;
* :mod:`~churnguard.sequences.cache` -- the newest N events before a cutoff per customer, built
  in DuckDB and kept as memory-mapped arrays on disk;
* :mod:`~churnguard.sequences.batch` -- ragged sequences, padding into tensors with lengths, and
  batching by length.
"""

from churnguard.sequences.batch import EventSequences, PaddedBatch, length_batches, pad, pad_spans
from churnguard.sequences.cache import CutoffSequences, SequenceCache, sequences_of

__all__ = ["CutoffSequences", "EventSequences", "PaddedBatch", "SequenceCache", "length_batches",
           "pad", "pad_spans", "sequences_of"]
