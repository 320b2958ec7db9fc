"""Fine-tuning the MiniLM text encoder end to end with a churn network (``tune_text=True``).

By default the texts of reviews and support tickets enter the tokens as frozen vectors: MiniLM-L6
(:mod:`churnguard.text`) through a fixed random projection to
:data:`~churnguard.sequences.tokens.TEXT_DIM` dimensions, computed once and cached. With
``BehaviourChurnModel(tune_text=True)`` the network holds its own copy of MiniLM in a
:class:`TextTower` and encodes the distinct texts of every batch itself, so the churn loss trains
the text encoder too:

    tokenise -> BERT (6 layers) -> mean over the real tokens -> unit length -> the fixed projection

which is the cached vectors' pipeline step for step (sentence-transformers' all-MiniLM-L6-v2
pools by mean and normalises). Before training the tower therefore gives the cached vectors
(tests/models/test_text_tuning.py), and fine-tuning starts from exactly the frozen model's inputs.
The tower learns at its own small rate (``text_lr``, 2e-5 by default, in the range Devlin et al.
2019, "BERT", appendix A.3, recommend for fine-tuning).

It is an option for shops with much text and the time to use it: a tuned model carries its own
22.7 million MiniLM weights (about 90 MB more when saved), and every batch runs BERT forward and
backward over its texts.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from churnguard.sequences.batch import PaddedBatch
from churnguard.sequences.tokens import TEXT_DIM, text_projection

__all__ = ["TextTower"]


def _sentence_encoder():  # noqa: ANN202  (sentence_transformers is imported lazily)
    from churnguard.text import load_encoder

    return load_encoder()


class TextTower(nn.Module):
    """A trainable copy of MiniLM and the fixed projection: texts to (T, TEXT_DIM) vectors."""

    def __init__(self) -> None:
        super().__init__()
        transformer = _sentence_encoder()[0]
        # A copy: training must not change the process-wide encoder the caches are built with.
        self.bert = copy.deepcopy(transformer.auto_model)
        self.max_tokens = int(transformer.max_seq_length)
        self.register_buffer("projection", torch.from_numpy(text_projection()))

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        if len(texts) == 0:
            return torch.zeros((0, TEXT_DIM), dtype=self.projection.dtype)
        # The tokenizer is the process-wide one (it holds no weights); it is not pickled.
        tokenizer = _sentence_encoder()[0].tokenizer
        tokens = tokenizer(list(texts), padding=True, truncation=True,
                           max_length=self.max_tokens, return_tensors="pt")
        hidden = self.bert(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(mean, dim=-1) @ self.projection

    def fill(self, batch: PaddedBatch) -> PaddedBatch:
        """``batch`` with its text vectors encoded by this tower (the batch must have been
        padded with ``strings=True``)."""
        if batch.texts is None or "text_index" not in batch.payload:
            raise ValueError("a network that fine-tunes its text encoder needs batches padded "
                             "with strings=True (the texts themselves)")
        vectors = self(batch.texts)
        # Row 0 is "no text": the index shifted by one gathers text vectors and zeros at once.
        table = torch.cat([torch.zeros((1, TEXT_DIM), dtype=vectors.dtype), vectors])
        text = table[batch.payload["text_index"] + 1]
        return PaddedBatch(payload={**batch.payload, "text": text}, lengths=batch.lengths,
                           texts=batch.texts)
