"""Encoders: output shapes, padding invariance, empty histories; CoLES loss and pretraining."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from churnguard.models.behaviour.encoders import EncoderConfig, build_encoder
from churnguard.models.behaviour.pretrain import (
    PretrainConfig,
    coles_loss,
    load_encoder,
    pretrain_sequences,
    sample_views,
)
from churnguard.sequences.batch import EventSequences, PaddedBatch, pad
from churnguard.sequences.tokens import TEXT_DIM, VOCAB_SIZES

KINDS = ["gru", "transformer"]


def random_sequences(lengths: list[int], seed: int = 0, *, habits: int | None = None
                     ) -> EventSequences:
    """Random tokens; with ``habits``, customer i repeats a pattern of its own (i % habits)."""
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = int(offsets[-1])
    cat = np.stack([rng.integers(1, VOCAB_SIZES[f], n) for f in VOCAB_SIZES], axis=1)
    if habits is not None:
        for i, (s, e) in enumerate(zip(offsets[:-1], offsets[1:])):
            habit = i % habits
            cat[s:e, 0] = 2 + (habit + np.arange(e - s) % 3) % 12
            cat[s:e, 1] = 2 + habit
    num = rng.random((n, 3)).astype(np.float16) * 4
    num[:, 2] = 0
    text = np.where(rng.random(n) < 0.2, 0, -1).astype(np.int32)
    return EventSequences(offsets=offsets, cat=cat.astype(np.uint8), num=num, text=text,
                          text_vectors=rng.standard_normal((1, TEXT_DIM)).astype(np.float32),
                          context=rng.random((len(lengths), 2)).astype(np.float32))


def wider(batch: PaddedBatch, extra: int) -> PaddedBatch:
    """The same batch with ``extra`` more padding positions, holding garbage."""
    payload = {}
    for key, value in batch.payload.items():
        if value.ndim >= 3:
            pad_shape = (value.shape[0], extra, *value.shape[2:])
            garbage = torch.full(pad_shape, 3, dtype=value.dtype)
            payload[key] = torch.cat([value, garbage], dim=1)
        else:
            payload[key] = value
    return PaddedBatch(payload, batch.lengths)


@pytest.mark.parametrize("kind", KINDS)
def test_output_shape_and_empty_histories_get_the_learned_empty_vector(kind):
    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig(kind=kind, d_model=16, n_layers=2)).eval()
    with torch.no_grad():
        encoder.empty.fill_(0.5)
        out = encoder(pad(random_sequences([0, 1, 5, 0]), np.arange(4)))
    assert out.shape == (4, 16)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[0], torch.full((16,), 0.5)) and torch.allclose(out[3], out[0])
    assert not torch.allclose(out[1], out[0])


@pytest.mark.parametrize("kind", KINDS)
def test_padding_never_changes_the_output(kind):
    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig(kind=kind, d_model=16, n_layers=2)).eval()
    seqs = random_sequences([1, 7, 3, 12])
    batch = pad(seqs, np.arange(4))
    with torch.no_grad():
        together = encoder(batch)
        padded = encoder(wider(batch, 5))
        alone = torch.cat([encoder(pad(seqs, np.array([i]))) for i in range(4)])
    torch.testing.assert_close(padded, together, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone, together, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_order_of_events_matters(kind):
    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig(kind=kind, d_model=16)).eval()
    seqs = random_sequences([6])
    reversed_ = EventSequences(offsets=seqs.offsets, cat=seqs.cat[::-1].copy(),
                               num=seqs.num, text=seqs.text[::-1].copy(),
                               text_vectors=seqs.text_vectors, context=seqs.context)
    with torch.no_grad():
        a, b = encoder(pad(seqs, np.array([0]))), encoder(pad(reversed_, np.array([0])))
    assert not torch.allclose(a, b, atol=1e-4)


def test_coles_loss_is_low_when_views_of_a_customer_agree():
    owners = torch.tensor([0, 0, 1, 1, 2, 2])
    apart = torch.eye(3).repeat_interleave(2, dim=0)
    mixed = torch.eye(3)[[0, 1, 2, 0, 1, 2]]
    assert coles_loss(apart, owners, 0.1) < 0.01
    assert coles_loss(mixed, owners, 0.1) > 5


def test_views_are_slices_inside_each_customer():
    rng = np.random.default_rng(0)
    starts, lengths = np.array([0, 10, 13]), np.array([10, 3, 1])
    s, e = sample_views(starts, lengths, views=3, min_view=2, max_view=5, rng=rng)
    owner = np.repeat(np.arange(3), 3)
    assert (s >= starts[owner]).all() and (e <= starts[owner] + lengths[owner]).all()
    assert ((e - s) >= np.minimum(2, lengths[owner])).all() and ((e - s) <= 5).all()


@pytest.mark.parametrize("kind", KINDS)
def test_pretraining_reduces_the_held_out_contrastive_loss(kind, tmp_path):
    seqs = random_sequences([int(x) for x in np.random.default_rng(1).integers(6, 30, 160)],
                            habits=8)
    config = PretrainConfig(encoder=EncoderConfig(kind=kind, d_model=16, use_text=True),
                            epochs=4, batch_customers=16, min_view=3, max_view=10, lr=5e-3,
                            heldout_fraction=0.2, patience=4, seed=0, threads=1)
    result = pretrain_sequences(seqs, config=config, out_dir=tmp_path)
    losses = [h["heldout_loss"] for h in result.history]
    assert losses[-1] < losses[0] - 0.1
    assert (tmp_path / "encoder.pt").exists()
    assert len(list((tmp_path / "checkpoints").glob("epoch-*.pt"))) == len(result.history)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    encoder, summary = load_encoder(tmp_path)
    assert summary["best_epoch"] == result.best_epoch
    batch = pad(seqs, np.arange(5))
    with torch.no_grad():
        torch.testing.assert_close(encoder(batch), result.encoder.eval()(batch))


def test_masked_event_modelling_option_runs_and_learns(tmp_path):
    # A learnable toy task: each customer repeats a habit of its own, so a masked event's type
    # follows from its neighbours. Fixed seed, one thread: the same run every time.
    seqs = random_sequences([20] * 48, habits=4)
    config = PretrainConfig(encoder=EncoderConfig(kind="transformer", d_model=16), epochs=6,
                            batch_customers=16, mem_weight=1.0, min_view=5, max_view=10,
                            lr=5e-3, heldout_fraction=0.2, patience=6, seed=0, threads=1)
    result = pretrain_sequences(seqs, config=config, out_dir=tmp_path)
    heldout = [h["heldout_loss"] for h in result.history]
    assert len(heldout) == 6 and np.isfinite(heldout).all()
    assert min(heldout[1:]) < heldout[0] - 0.1  # held out: contrastive plus masked-event loss
    # The masked-event part itself falls over training, not only the contrastive part.
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    mem = [e.value for e in events.Scalars("loss/train_mem")]
    assert len(mem) >= 12
    assert np.mean(mem[-3:]) < np.mean(mem[:3]) - 0.2, mem


def test_pretraining_refuses_too_few_customers():
    with pytest.raises(ValueError, match="at least 8 customers with two or more events"):
        pretrain_sequences(random_sequences([1, 5, 0]), config=PretrainConfig(epochs=1))


def test_missing_encoder_file_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `churnguard pretrain`"):
        load_encoder(tmp_path / "nothing.pt")
