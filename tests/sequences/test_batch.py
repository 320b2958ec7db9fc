"""Padding and masks in one place: empty, length-1, exactly-N and mixed histories; bucketing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from churnguard.sequences.batch import (
    EventSequences,
    concat,
    gather,
    length_batches,
    pad,
    pad_spans,
)
from churnguard.sequences.tokens import TEXT_DIM


def make(lengths: list[int], *, with_text: bool = False) -> EventSequences:
    """Customers whose i-th event has type code = 1 + its position (so order is visible)."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = int(offsets[-1])
    cat = np.zeros((n, 6), dtype=np.uint8)
    for start, end in zip(offsets[:-1], offsets[1:]):
        cat[start:end, 0] = np.arange(1, end - start + 1)
    cat[:, 1:] = 1
    num = np.tile(np.array([0.5, 1.0, 0.0], dtype=np.float16), (n, 1))
    text = np.full(n, -1, dtype=np.int32)
    vectors = np.zeros((0, TEXT_DIM), dtype=np.float32)
    if with_text and n:
        text[0] = 0
        vectors = np.ones((1, TEXT_DIM), dtype=np.float32)
    context = np.arange(2 * len(lengths), dtype=np.float32).reshape(-1, 2)
    return EventSequences(offsets=offsets, cat=cat, num=num, text=text, text_vectors=vectors,
                          context=context)


def test_all_empty_batch_has_width_one_and_no_real_event():
    batch = pad(make([0, 0]), np.array([0, 1]))
    assert batch.payload["cat"].shape == (2, 1, 6)
    assert batch.lengths.tolist() == [0, 0]
    assert not batch.mask.any()
    assert (batch.payload["cat"] == 0).all()


def test_length_one_and_mixed_lengths_are_right_padded():
    batch = pad(make([1, 3, 0]), np.array([0, 1, 2]))
    assert batch.lengths.tolist() == [1, 3, 0]
    assert batch.mask.tolist() == [[True, False, False], [True, True, True],
                                   [False, False, False]]
    assert batch.payload["cat"][..., 0].tolist() == [[1, 0, 0], [1, 2, 3], [0, 0, 0]]
    # padding positions are all zeros in every field
    assert (batch.payload["num"][~batch.mask] == 0).all()
    assert batch.payload["context"].tolist() == [[0, 1], [2, 3], [4, 5]]


def test_exactly_max_len_is_kept_whole_and_longer_is_cut_to_the_newest():
    seqs = make([4, 6])
    batch = pad(seqs, np.array([0, 1]), max_len=4)
    assert batch.lengths.tolist() == [4, 4]
    assert batch.mask.all()
    assert batch.payload["cat"][..., 0].tolist() == [[1, 2, 3, 4], [3, 4, 5, 6]]


def test_rows_in_any_order_and_text_vectors_follow_their_event():
    seqs = make([2, 1], with_text=True)
    batch = pad(seqs, np.array([1, 0]))
    assert batch.payload["cat"][..., 0].tolist() == [[1, 0], [1, 2]]
    assert batch.payload["text"][1, 0].sum() == TEXT_DIM  # customer 0's first event
    assert batch.payload["text"][0].abs().sum() == 0


def test_pad_spans_rejects_reversed_spans():
    with pytest.raises(ValueError, match="end before they start"):
        pad_spans(make([3]), np.array([2]), np.array([1]))


def test_concat_and_take_keep_each_customer_whole():
    a, b = make([2, 3], with_text=True), make([1])
    merged = concat([(a, np.array([1])), (b, np.array([0])), (a, np.array([0]))])
    assert merged.lengths.tolist() == [3, 1, 2]
    assert merged.take(np.array([2])).lengths.tolist() == [2]
    # text rows are re-pointed into the merged table
    assert merged.text[merged.offsets[2]] == 1  # after the first copy of a's one vector
    assert np.allclose(merged.text_vectors[merged.text[merged.offsets[2]]], 1.0)


def test_event_sequences_check_their_shapes():
    good = make([2])
    expected = r"EventSequences.cat has shape \(1, 6\), expected \(2, 6\)"
    with pytest.raises(ValueError, match=expected):
        EventSequences(offsets=good.offsets, cat=good.cat[:1], num=good.num, text=good.text,
                       text_vectors=good.text_vectors, context=good.context)


def test_length_batches_cover_every_row_once_and_group_similar_lengths():
    lengths = np.array([5, 1, 9, 3, 3, 7, 2])
    batches = length_batches(lengths, 3)
    assert sorted(np.concatenate(batches).tolist()) == list(range(7))
    assert [lengths[b].tolist() for b in batches] == [[1, 2, 3], [3, 5, 7], [9]]
    shuffled = length_batches(lengths, 3, rng=np.random.default_rng(0))
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(7))
    assert all(lengths[b].max() - lengths[b].min() <= 4 for b in shuffled)


def test_token_budget_bounds_rows_times_longest_length():
    lengths = np.array([0, 1, 1, 2, 2, 2, 3, 8, 20, 4, 4])
    batches = length_batches(lengths, 4, max_tokens=8)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert [lengths[b].tolist() for b in batches] == [[0, 1, 1, 2], [2, 2], [3, 4], [4], [8],
                                                      [20]]
    # a sequence longer than the budget still gets a batch of its own
    assert all(len(b) == 1 or len(b) * max(lengths[b].max(), 1) <= 8 for b in batches)
    shuffled = length_batches(lengths, 4, max_tokens=8, rng=np.random.default_rng(1))
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(len(lengths)))


def test_batching_arguments_below_one_are_refused():
    with pytest.raises(ValueError, match=r"batch_size \(0\) and max_tokens \(None\) must be"):
        length_batches(np.array([1, 2]), 0)
    with pytest.raises(ValueError, match=r"batch_size \(2\) and max_tokens \(0\) must be"):
        length_batches(np.array([1, 2]), 2, max_tokens=0)


def test_gather_picks_customers_of_several_sources_in_the_given_order():
    a, b = make([2, 3], with_text=True), make([4])
    out = gather([a, b], np.array([1, 0, 0, 1]), np.array([0, 1, -1, 0]), max_len=3)
    assert out.lengths.tolist() == [3, 3, 0, 3]
    # newest 3 events of b's customer (positions 2..4), then a's second customer whole
    assert out.cat[:, 0].tolist() == [2, 3, 4, 1, 2, 3, 2, 3, 4]
    assert out.context.tolist() == [[0, 1], [2, 3], [0, 0], [0, 1]]
    # a's one text vector stays reachable only from a's events (a's first customer: not taken)
    assert (out.text == -1).all() and len(out.text_vectors) == 1
    whole = gather([a], np.zeros(2, dtype=np.int64), np.array([1, 0]))
    assert whole.text.tolist()[3] == 0 and np.allclose(whole.text_vectors[0], 1.0)


def test_take_with_max_len_keeps_the_newest_events():
    seqs = make([5, 2])
    cut = seqs.take(np.array([0, 1]), max_len=3)
    assert cut.lengths.tolist() == [3, 2]
    assert cut.cat[:, 0].tolist() == [3, 4, 5, 1, 2]


def test_mask_is_derived_from_lengths_only():
    batch = pad(make([2, 1]), np.array([0, 1]))
    batch.lengths[1] = 2  # the mask follows the lengths, nothing else
    assert batch.mask[1].tolist() == [True, True]
    assert isinstance(batch.mask, torch.Tensor) and batch.mask.dtype == torch.bool


def with_strings(seqs: EventSequences, texts: list[str], rows: dict[int, int]) -> EventSequences:
    """``seqs`` with a text table of ``texts`` (vector k = k + 1 everywhere) and event -> text
    row ``rows``."""
    text = np.full(len(seqs.text), -1, dtype=np.int32)
    for event, row in rows.items():
        text[event] = row
    vectors = np.repeat(np.arange(1, len(texts) + 1, dtype=np.float32)[:, None], TEXT_DIM, 1)
    return EventSequences(offsets=seqs.offsets, cat=seqs.cat, num=seqs.num, text=text,
                          text_vectors=vectors, context=seqs.context,
                          text_strings=np.asarray(texts, dtype=str))


def test_padding_with_strings_gives_each_event_its_own_text_once_per_batch():
    # customer 0: events 0-2, customer 1: events 3-4; "late" is used twice, "fine" never.
    seqs = with_strings(make([3, 2]), ["late", "fine", "broken"], {0: 0, 2: 2, 4: 0})
    batch = pad(seqs, np.array([0, 1]), strings=True)
    assert sorted(batch.texts) == ["broken", "late"]  # distinct, and only the batch's
    index = batch.payload["text_index"]
    got = [[batch.texts[i] if i >= 0 else None for i in row] for row in index.tolist()]
    assert got == [["late", None, "broken"], [None, "late", None]]
    # the vectors are still the cached ones, where the index says
    assert batch.payload["text"][0, 0, 0] == 1 and batch.payload["text"][0, 2, 0] == 3
    assert pad(seqs, np.array([0, 1])).texts is None  # only when asked


def test_padding_with_strings_needs_sequences_that_keep_them():
    with pytest.raises(ValueError, match="keep no texts"):
        pad(make([2], with_text=True), np.array([0]), strings=True)


def test_gather_merges_text_tables_and_their_strings_in_step():
    a = with_strings(make([2]), ["late"], {1: 0})
    b = with_strings(make([1]), ["broken", "slow"], {0: 1})
    merged = concat([(b, np.array([0])), (a, np.array([0]))])
    assert merged.text_strings.tolist() == ["broken", "slow", "late"]
    batch = pad(merged, np.array([0, 1]), strings=True)
    index = batch.payload["text_index"].tolist()
    assert batch.texts[index[0][0]] == "slow" and batch.texts[index[1][1]] == "late"
    # one source without strings: the merged sequences keep none
    assert concat([(a, np.array([0])), (make([1]), np.array([0]))]).text_strings is None
