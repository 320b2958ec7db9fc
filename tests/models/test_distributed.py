"""Pretraining across processes: a 2-rank gloo run (torchrun) gives the single-process loss
and gradients on the concatenated batch, and trains the same encoder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from churnguard.models.behaviour.distributed import load_sequences, pretrain_with_torchrun, \
    save_sequences
from churnguard.models.behaviour.encoders import EncoderConfig, build_encoder
from churnguard.models.behaviour.pretrain import (
    PretrainConfig,
    _Pretrainer,
    _step_loss,
    pretrain_sequences,
)
from churnguard.sequences.batch import EventSequences

HERE = Path(__file__).resolve().parent
SRC = HERE.parent.parent / "src"
CASES = ("gru", "transformer")


def _sequences(n: int, seed: int = 0) -> EventSequences:
    sys.path.insert(0, str(HERE))
    from test_behaviour_encoders import random_sequences  # noqa: PLC0415

    lengths = [int(x) for x in np.random.default_rng(seed).integers(4, 40, n)]
    return random_sequences(lengths, seed=seed, habits=6)


def check_inputs(kind: str) -> tuple[EventSequences, PretrainConfig, np.ndarray]:
    """The sequences, settings (no dropout: the ranks' masks would differ) and global batch of
    the gradient check; the views come from default_rng(3)."""
    config = PretrainConfig(encoder=EncoderConfig(kind=kind, d_model=16, dropout=0.0,
                                                  n_layers=2),
                            batch_customers=6, min_view=3, max_view=12, threads=1)
    return _sequences(30), config, np.array([1, 4, 7, 8, 12, 13, 17, 20, 22, 25, 27, 29])


def _torchrun(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)])}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node=2", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    _torchrun([str(HERE / "ddp_worker.py"), str(out)], cwd=out)
    return out


@pytest.mark.parametrize("kind", CASES)
def test_two_rank_gradients_equal_the_single_process_gradients(two_ranks, kind):
    seqs, config, customers = check_inputs(kind)
    torch.manual_seed(0)
    net = _Pretrainer(build_encoder(config.encoder), None)
    loss, _, _ = _step_loss(net, seqs, customers, config, np.random.default_rng(3))
    loss.backward()
    single = {k: p.grad for k, p in net.named_parameters() if p.grad is not None}
    moving = [k for k, g in single.items() if g.abs().max() > 1e-4]
    assert len(moving) >= 0.8 * len(single), "the check needs gradients that are not all zero"
    for rank in (0, 1):
        saved = torch.load(two_ranks / f"{kind}-rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(saved["loss"], loss.detach(), rtol=0, atol=1e-6)
        assert saved["grads"].keys() == single.keys()
        for name, grad in single.items():
            torch.testing.assert_close(saved["grads"][name], grad, rtol=0, atol=1e-6,
                                       msg=lambda m, n=name: f"{n}: {m}")


def test_sequences_survive_the_file_the_workers_read(tmp_path):
    seqs = _sequences(12)
    back = load_sequences(save_sequences(seqs, tmp_path / "s.npz"))
    for field in ("offsets", "cat", "num", "text", "text_vectors", "context"):
        np.testing.assert_array_equal(getattr(back, field), getattr(seqs, field))


def test_two_processes_train_the_encoder_one_process_trains_on_the_whole_batch(tmp_path):
    # One process with batch 16 and two with 8 each see the same global batches and views;
    # without dropout their weights after two epochs agree up to float summation order. Two
    # processes cut a batch to an even size, so the training customers (all but the held-out
    # draw, as pretrain_sequences makes it) fill whole batches of 16 here.
    n = next(n for n in range(64, 200)
             if (n - int((np.random.default_rng(4).random(n) < 0.1).sum())) % 16 == 0)
    seqs = _sequences(n, seed=2)
    base = dict(encoder=EncoderConfig(kind="gru", d_model=16, dropout=0.0), epochs=2,
                min_view=3, max_view=12, heldout_fraction=0.1, seed=4, threads=1, lr=5e-3)
    one = pretrain_sequences(seqs, config=PretrainConfig(batch_customers=16, **base))
    two = pretrain_with_torchrun(seqs, config=PretrainConfig(batch_customers=8, **base),
                                 nproc=2, out_dir=tmp_path)
    assert (tmp_path / "encoder.pt").exists() and len(two.history) == len(one.history)
    for a, b in zip(one.history, two.history):
        assert a["heldout_loss"] == pytest.approx(b["heldout_loss"], abs=1e-4)
    for (name, p), q in zip(one.encoder.state_dict().items(), two.encoder.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=0, atol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
