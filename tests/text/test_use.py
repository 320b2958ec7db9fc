"""The multilingual USE encoder behind ``[text] encoder = "use"``: its weights ship in the
package (loading opens no connection), its vectors have MiniLM's size and are the same on every
run, and Chinese and English texts about the same thing are near each other."""

from __future__ import annotations

import socket

import numpy as np

from churnguard.config import ProjectConfig
from churnguard.store import Store
from churnguard.text import shop_text_encoder
from churnguard.text.minilm import DIM
from churnguard.text.use import KEY, encode_use, load_use, projection


def test_loads_and_encodes_without_a_connection(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the USE encoder tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    load_use.cache_clear()
    vectors = encode_use(["快递太慢了", "late parcel"])
    assert vectors.shape == (2, DIM)


def test_same_size_unit_length_identical_on_rerun():
    texts = ["质量很差", "quality is poor", "质量很差", "", None]
    a, b = encode_use(texts), encode_use(list(texts))
    assert a.shape == (5, DIM) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert np.array_equal(a[0], a[2])
    assert np.allclose(np.linalg.norm(a[:4], axis=1), 1.0, atol=1e-5)
    p = projection()
    assert np.allclose(p.T @ p, np.eye(DIM), atol=1e-5)  # orthonormal: cosines kept closely


def test_one_space_for_both_languages():
    v = encode_use(["快递太慢了，一个星期还没到", "the parcel is late, a week and still nothing",
                    "质量太差，用了两天就坏了", "poor quality, broke after two days"])
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 3] and sims[2, 3] > sims[2, 1]


def test_the_setting_chooses_the_encoder():
    store = Store.in_memory()
    assert shop_text_encoder(store, ProjectConfig().text.encoder).key == KEY
    assert shop_text_encoder(store, "bilingual").key == "minilm"  # no Chinese texts: MiniLM
    assert shop_text_encoder(store).key == "minilm"  # the sequence caches' path is unchanged
