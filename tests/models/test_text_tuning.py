"""Fine-tuning the MiniLM text encoder end to end (``BehaviourChurnModel(tune_text=True)``), on
tiny data: the tower starts from the cached vectors, training moves its weights and only its
own copy's, and the tuned model scores, explains its vectors and survives pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from churnguard.models.behaviour.model import BehaviourChurnModel
from churnguard.models.behaviour.text_tuning import TextTower
from churnguard.text import load_encoder
from churnguard.sequences.tokens import project_texts

TEXTS = ["the parcel came two weeks late", "great quality, will buy again", "refund please"]
TINY = dict(d_model=16, max_len=16, use_text=True, pretrain="none", epochs=1, batch_size=64,
            n_threads=1, seed=3)


def small(snapshot, n: int):
    """The first ``n`` rows of each cutoff of ``snapshot``."""
    cutoffs = snapshot.index.get_level_values(1)
    keep = np.zeros(len(snapshot), dtype=bool)
    for cutoff in cutoffs.unique():
        keep[np.flatnonzero(cutoffs == cutoff)[:n]] = True
    return snapshot.subset(keep)


@pytest.fixture(scope="module")
def tiny(snapshots):
    return small(snapshots.train, 150), small(snapshots.validation, 150)


@pytest.fixture(scope="module")
def tuned(tiny):
    train, validation = tiny
    return BehaviourChurnModel(tune_text=True, text_lr=1e-3, **TINY).fit(train,
                                                                        validation=validation)


def test_the_tower_starts_from_the_cached_frozen_vectors():
    with torch.inference_mode():
        vectors = TextTower().eval()(TEXTS).numpy()
    np.testing.assert_allclose(vectors, project_texts(TEXTS), atol=1e-5)


def test_fine_tuning_moves_the_models_own_minilm_and_not_the_shared_one(tuned):
    shared = dict(load_encoder()[0].auto_model.named_parameters())
    changed = [name for name, p in tuned.network_.text_tower.bert.named_parameters()
               if not torch.equal(p.detach(), shared[name].detach())]
    assert len(changed) > 10  # trained end to end, down into the transformer layers
    assert any(name.startswith("encoder.layer.0.") for name in changed)
    # the process-wide encoder (the caches' vectors) is untouched
    with torch.inference_mode():
        fresh = TextTower().eval()(TEXTS).numpy()
    np.testing.assert_allclose(fresh, project_texts(TEXTS), atol=1e-5)


def test_tuned_model_scores_embeds_and_round_trips_through_pickle(tuned, snapshots):
    test = small(snapshots.test, 120)
    p = tuned.predict_proba(test)
    assert p.shape == (len(test),) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    assert tuned.embed(test).shape == (len(test), 16)
    again = pickle.loads(pickle.dumps(tuned))
    np.testing.assert_allclose(again.predict_proba(test), p, atol=1e-6)


def test_the_tuned_text_changes_what_the_network_sees(tuned, tiny):
    # Same seed and data: were the tower ignored, the two networks would be the same.
    train, validation = tiny
    frozen = BehaviourChurnModel(**TINY).fit(train, validation=validation)
    assert frozen.network_.text_tower is None and tuned.network_.text_tower is not None
    batch_vectors = tuned.embed(validation)
    assert not np.allclose(batch_vectors, frozen.embed(validation))


@pytest.mark.parametrize("options, message", [
    (dict(use_text=False), "needs use_text=True"),
    (dict(runtime="onnx"), "PyTorch only"),
])
def test_tune_text_refuses_what_it_cannot_do_before_training(tiny, options, message):
    train, validation = tiny
    params = {**TINY, **options}
    with pytest.raises(ValueError, match=message):
        BehaviourChurnModel(tune_text=True, **params).fit(train, validation=validation)


def test_same_seed_same_tuned_model(tuned, tiny, snapshots):
    train, validation = tiny
    again = BehaviourChurnModel(tune_text=True, text_lr=1e-3, **TINY).fit(train,
                                                                         validation=validation)
    test = small(snapshots.test, 60)
    np.testing.assert_allclose(again.predict_proba(test), tuned.predict_proba(test), atol=1e-6)
