"""Scoring paths of the behaviour networks: batching by length, the lean attention layer, and
the ONNX Runtime export against PyTorch (empty, length-1, exactly-N and longer histories)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from churnguard.models.behaviour.encoders import (
    EncoderConfig,
    _attention_bias,
    _post_ln_layer,
    build_encoder,
)
from churnguard.models.behaviour.inference import ONNX_INPUTS, OnnxNetwork, embed, export_onnx
from churnguard.models.behaviour.model import _Network
from churnguard.models.behaviour.optim import denormals_flushed
from churnguard.sequences.batch import pad

from test_behaviour_encoders import random_sequences

KINDS = ["gru", "transformer"]
N = 12  # max_len of these tests
# Empty, length 1, exactly N, longer than N (cut to the newest N), and a few in between.
LENGTHS = [0, 1, N, N + 5, 3, 0, 7, 1, N, 2, 11, 5]


def network(kind: str, *, use_text: bool = True) -> _Network:
    torch.manual_seed(0)
    config = EncoderConfig(kind=kind, d_model=16, n_layers=2, n_heads=4, d_ff=32,
                           use_text=use_text)
    net = _Network(build_encoder(config), hidden=16, dropout=0.1).eval()
    with torch.no_grad():
        net.encoder.empty.normal_()  # so that empty histories are told apart from zeros
    return net


@pytest.mark.parametrize("use_text", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_onnx_runtime_scores_equal_pytorch(kind, use_text):
    net = network(kind, use_text=use_text)
    seqs = random_sequences(LENGTHS, seed=3)
    expected = embed(net.encoder, seqs, max_len=N, head=net)
    session = OnnxNetwork(export_onnx(net), threads=1)
    # Batches of one customer, of mixed lengths, and all at once: the graph holds for any shape.
    for batch_size, max_tokens in ((1, None), (4, 16), (64, 10_000)):
        got = embed(net.encoder, seqs, max_len=N, head=session, batch_size=batch_size,
                    max_tokens=max_tokens)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert session.inputs == [n for n in ONNX_INPUTS if use_text or n != "text"]


@pytest.mark.parametrize("kind", KINDS)
def test_exported_encoder_alone_gives_the_customer_vectors(kind, tmp_path):
    encoder = network(kind).encoder
    seqs = random_sequences(LENGTHS, seed=4)
    path = tmp_path / "encoder.onnx"
    graph = export_onnx(encoder, path)
    assert path.read_bytes() == graph
    got = embed(encoder, seqs, max_len=N, head=OnnxNetwork(path, threads=1))
    expected = embed(encoder, seqs, max_len=N)
    assert got.shape == (len(LENGTHS), 16)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got[0], encoder.empty.detach().numpy(), atol=1e-6)
    assert encoder.training is False  # export leaves the module as it found it


@pytest.mark.parametrize("kind", KINDS)
def test_results_come_back_in_the_customers_order_whatever_the_batching(kind):
    net = network(kind)
    seqs = random_sequences(LENGTHS, seed=5)
    one_by_one = np.concatenate([net(pad(seqs, np.array([i]), max_len=N)).detach().numpy()
                                 for i in range(len(LENGTHS))])
    for batch_size, max_tokens in ((1, None), (3, 8), (512, None)):
        np.testing.assert_allclose(embed(net.encoder, seqs, max_len=N, head=net,
                                         batch_size=batch_size, max_tokens=max_tokens),
                                   one_by_one, atol=1e-5, rtol=1e-5)


def test_embed_of_no_customers_has_the_right_shape():
    net = network("gru")
    empty = random_sequences([])
    assert embed(net.encoder, empty, max_len=N).shape == (0, 16)
    assert embed(net.encoder, empty, max_len=N, head=net).shape == (0,)


@pytest.mark.parametrize("training", [False, True])
def test_lean_layer_equals_pytorchs_transformer_layer(training):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
    layer.train(training)
    x = torch.randn(3, 5, 16)
    lengths = torch.tensor([5, 2, 1])
    mask = torch.arange(5)[None, :] < lengths[:, None]
    with torch.no_grad():
        expected = layer(x, src_key_padding_mask=~mask)
        got = _post_ln_layer(layer, x, _attention_bias(mask, x.dtype))
    torch.testing.assert_close(got[mask], expected[mask], atol=1e-5, rtol=1e-5)


def test_attention_bias_is_skipped_without_padding_and_masks_padding_otherwise():
    full = torch.ones(2, 3, dtype=torch.bool)
    assert _attention_bias(full, torch.float32) is None
    bias = _attention_bias(torch.tensor([[True, True, False]]), torch.float32)
    assert bias.shape == (1, 1, 1, 3)
    assert bias.flatten().tolist() == [0.0, 0.0, float("-inf")]


def test_transformer_drops_out_in_training_and_scores_deterministically():
    net = network("transformer")
    batch = pad(random_sequences([6, 3], seed=6), np.arange(2), max_len=N)
    net.train()
    with torch.no_grad():
        assert not torch.equal(net(batch), net(batch))  # dropout is on in training
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(batch), net(batch), atol=0, rtol=0)


def _denormal_survives() -> bool:
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # below float32's smallest normal 1.2e-38
    return bool((tiny * 1.0).item() != 0.0)


@pytest.mark.parametrize("before", [False, True])
def test_networks_flush_denormals_while_they_run_and_restore_the_setting(before):
    """Gradients back-propagated through hundreds of GRU steps fall below float32's normal range,
    where the CPU computes 10-100x slower; the networks flush them while they run. The setting
    is the whole thread's (NumPy and SciPy too), so it is put back afterwards."""
    torch.set_flush_denormal(before)
    try:
        assert _denormal_survives() is not before
        with denormals_flushed():
            assert not _denormal_survives()
        assert _denormal_survives() is not before

        seen = []
        encoder = network("gru").encoder
        hook = encoder.register_forward_hook(lambda *_: seen.append(_denormal_survives()))
        embed(encoder, random_sequences(LENGTHS), max_len=N, threads=1)
        hook.remove()
        assert seen and not any(seen)
        assert _denormal_survives() is not before
    finally:
        torch.set_flush_denormal(False)


def test_attention_weights_are_not_dropped_unless_asked_the_other_paths_are():
    """Dropout on the attention weights forces PyTorch's unfused CPU attention (16x slower to
    train at 256 events); the embedding, residual and feed-forward paths keep ``dropout``."""
    default = build_encoder(EncoderConfig(kind="transformer", d_model=16, n_layers=2))
    assert [layer.self_attn.dropout for layer in default.layers.layers] == [0.0, 0.0]
    assert [layer.dropout1.p for layer in default.layers.layers] == [0.1, 0.1]
    assert default.embedding.drop.p == 0.1
    asked = build_encoder(EncoderConfig(kind="transformer", d_model=16, n_layers=2,
                                        attention_dropout=0.2))
    assert [layer.self_attn.dropout for layer in asked.layers.layers] == [0.2, 0.2]


@pytest.mark.parametrize("kind", KINDS)
def test_scoring_a_network_left_in_training_mode_has_no_dropout(kind):
    # A fit scores its validation customers between epochs with its network, still in training
    # mode, as the head: the head's dropout must be off then, as it is for the encoder.
    net = network(kind)
    seqs = random_sequences(LENGTHS, seed=3)
    expected = embed(net.encoder, seqs, max_len=N, head=net)
    net.train()
    first = embed(net.encoder, seqs, max_len=N, head=net)
    net.train()
    second = embed(net.encoder, seqs, max_len=N, head=net)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, expected, atol=1e-6)
    assert not net.training and not net.head.training
