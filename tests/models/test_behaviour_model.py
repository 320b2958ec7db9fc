"""The behaviour models on the session's simulated shop (tiny settings, model_factories.py):
what only they do (ONNX runtime, pretraining, the hybrid's reasons), and one tiny end-to-end
backtest with every behaviour model. The contract itself (constructor, unfitted error, same seed,
save/load, no look-ahead) runs over them in test_contract.py."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit

from churnguard.evaluate import backtest, roc_auc
from churnguard.models.behaviour.encoders import EncoderConfig
from churnguard.models.behaviour.model import BEHAVIOUR_COLUMN, BehaviourChurnModel
from churnguard.models.behaviour.pretrain import PretrainConfig, pretrain
from churnguard.models.ensemble import StackedEnsemble

from model_factories import MODEL_FACTORIES, NET

FACTORIES = {name: MODEL_FACTORIES[name] for name in
             ("behaviour", "behaviour_gru", "behaviour_transformer", "behaviour+gbdt")}


@pytest.fixture(scope="module")
def fitted(fitted_models):
    return {name: fitted_models[name] for name in FACTORIES}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_fit_keeps_params_and_predicts_one_probability_per_row(name, fitted, snapshots):
    model = fitted[name]
    assert model.get_params() == FACTORIES[name]().get_params()
    p = model.predict_proba(snapshots.test)
    assert p.shape == (len(snapshots.test),) and np.isfinite(p).all()
    assert ((p >= 0) & (p <= 1)).all() and np.unique(p).size > 10
    assert roc_auc(snapshots.test.y(), p) > 0.55  # tiny, underfitted networks: above chance


@pytest.mark.parametrize("name", ["behaviour", "behaviour_transformer"])
def test_onnx_runtime_predicts_what_pytorch_predicts(name, fitted, snapshots):
    expected = fitted[name].predict_raw(snapshots.test)
    model = copy.deepcopy(fitted[name])
    model.runtime = "onnx"  # the fitted network, exported on this first prediction
    np.testing.assert_allclose(model.predict_raw(snapshots.test), expected, atol=1e-4)
    assert model._onnx is not None
    again = pickle.loads(pickle.dumps(model))  # the session is not pickled, but rebuilt
    assert "_onnx" not in vars(again)
    np.testing.assert_allclose(again.predict_raw(snapshots.test), expected, atol=1e-4)


def test_hybrid_onnx_runtime_gives_the_same_customer_vectors(fitted, snapshots):
    model = fitted["behaviour+gbdt"]
    expected = model._augmented(snapshots.test).features[model.embedding_columns_]
    onnx_model = copy.deepcopy(model)
    onnx_model.runtime = "onnx"
    got = onnx_model._augmented(snapshots.test).features[model.embedding_columns_]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-4)


def test_fit_with_the_onnx_runtime_scores_like_pytorch(snapshots):
    torch_model = FACTORIES["behaviour_gru"]().fit(snapshots.train,
                                                   validation=snapshots.validation)
    onnx_model = BehaviourChurnModel(encoder="gru", pretrain="none", epochs=2, runtime="onnx",
                                     **NET).fit(snapshots.train, validation=snapshots.validation)
    np.testing.assert_allclose(onnx_model.predict_raw(snapshots.test),
                               torch_model.predict_raw(snapshots.test), atol=1e-4)


def test_unknown_runtime_is_refused_before_training(snapshots):
    model = BehaviourChurnModel(runtime="tensorrt", **NET)
    with pytest.raises(ValueError, match=r"runtime must be one of \['torch', 'onnx'\], "
                                         r"got 'tensorrt'"):
        model.fit(snapshots.train, validation=snapshots.validation)


def test_pretrained_model_records_its_pretraining_and_scratch_does_not(fitted):
    assert fitted["behaviour"].pretrained_["n_customers"] > 0
    assert fitted["behaviour_gru"].pretrained_ is None


def test_hybrid_explains_with_one_behaviour_column_summing_to_its_log_odds(fitted, snapshots):
    model = fitted["behaviour+gbdt"]
    contributions = model.explain(snapshots.test)
    assert BEHAVIOUR_COLUMN in contributions.columns and contributions.columns[-1] == "bias"
    assert not any(c.startswith("behaviour_emb_") for c in contributions.columns)
    np.testing.assert_allclose(contributions.sum(axis=1).to_numpy(),
                               logit(model.predict_raw(snapshots.test)), atol=1e-6)
    values = model.explanation_values(snapshots.test)
    assert BEHAVIOUR_COLUMN in values.columns and len(values) == len(snapshots.test)


def test_hybrid_reasons_are_sentences(fitted, snapshots, simulated_shop):
    from churnguard.explain import reason_context, reasons

    model = fitted["behaviour+gbdt"]
    head = snapshots.test.subset(np.arange(len(snapshots.test)) < 20)
    context = reason_context(simulated_shop.store, head.index.to_frame(index=False))
    out = reasons(model.explain(head), model.explanation_values(head), context=context)
    assert (out["reason_1"].str.len() > 0).mean() > 0.5


def test_stacked_ensemble_of_fitted_members(fitted, snapshots):
    members = {n: fitted[n] for n in ("behaviour_gru", "behaviour+gbdt")}
    ensemble = StackedEnsemble.from_fitted(members, snapshots.validation)
    p = ensemble.predict_proba(snapshots.test)
    assert p.shape == (len(snapshots.test),) and set(ensemble.weights_) == set(members)
    contributions = ensemble.explain(snapshots.test)
    np.testing.assert_allclose(contributions.sum(axis=1).to_numpy(), logit(p), atol=1e-6)
    assert "behaviour_gru_score" in contributions.columns


def test_fine_tuning_from_a_pretrained_encoder_file(simulated_shop, snapshots, tmp_path):
    cutoff = snapshots.validation.index.get_level_values(1).max()
    config = PretrainConfig(encoder=EncoderConfig(d_model=16, use_text=False), epochs=1,
                            max_customers=300, max_len=48, threads=1)
    result = pretrain(simulated_shop.store, cutoff=cutoff, config=config, out_dir=tmp_path)
    assert result.path == tmp_path / "encoder.pt" and (tmp_path / "summary.json").exists()
    model = BehaviourChurnModel(pretrain=str(result.path), epochs=1, d_model=16, max_len=48,
                                use_text=False, n_threads=1)
    model.fit(snapshots.train, validation=snapshots.validation)
    assert model.name == "behaviour" and model.pretrained_["n_customers"] == 300
    with pytest.raises(ValueError, match="pretrained with use_text=False"):
        BehaviourChurnModel(pretrain=str(result.path), use_text=True).fit(
            snapshots.train, validation=snapshots.validation)


def test_tiny_backtest_with_behaviour_models(simulated_shop):
    models = [FACTORIES["behaviour_gru"](), FACTORIES["behaviour+gbdt"](),
              StackedEnsemble(members=("recency", FACTORIES["behaviour_gru"]()))]
    said: list[str] = []
    result = backtest(simulated_shop.store, definition=simulated_shop.definition,
                      train_cutoffs=1, models=models, truth=simulated_shop.truth,
                      progress=said.append)
    names = set(result.leaderboard()["name"])
    # Long fits report their epochs, through the ensemble too, so a backtest is never silent.
    assert any(m.startswith("behaviour_gru: epoch 1/") for m in said), said
    assert any(m.startswith("ensemble: behaviour_gru: epoch 1/") for m in said), said
    assert any(m.startswith("behaviour+gbdt: ") and "pretrain" in m for m in said), said
    assert {"behaviour_gru", "behaviour+gbdt", "ensemble", "oracle"} <= names
    assert all(m.roc_auc > 0.55 for m in result.metrics)
    assert isinstance(result.predictions, pd.DataFrame)
