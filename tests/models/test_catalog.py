"""The model catalogue: the kinds, their presets, the settings they take, and the demo's size."""

from __future__ import annotations

import pytest

from churnguard.models import catalog
from churnguard.models.behaviour.model import BehaviourChurnModel, BehaviourGBDTModel
from churnguard.models.ensemble import StackedEnsemble


def test_each_kind_builds_its_class_with_its_preset():
    built = {name: catalog.build(name) for name in catalog.KINDS}
    assert {n: type(m).__name__ for n, m in built.items()} == {
        "recency": "RecencyModel", "btyd": "BTYDChurnModel", "gbdt": "GBDTChurnModel",
        "gbdt+text": "TextGBDTModel", "behaviour": "BehaviourChurnModel", "behaviour_gru": "BehaviourChurnModel",
        "behaviour_transformer": "BehaviourChurnModel", "behaviour+gbdt": "BehaviourGBDTModel",
        "ensemble": "StackedEnsemble"}
    assert built["behaviour"].get_params() == BehaviourChurnModel().get_params()
    assert built["behaviour_gru"].get_params() == BehaviourChurnModel(
        encoder="gru", pretrain="none").get_params()
    assert built["behaviour_transformer"].get_params() == BehaviourChurnModel(
        encoder="transformer", n_layers=2, pretrain="none").get_params()
    assert built["behaviour+gbdt"].get_params() == BehaviourGBDTModel().get_params()
    assert built["ensemble"].get_params() == StackedEnsemble().get_params()
    # The text kind is the GBDT's hyper-parameters and its own three, at their defaults.
    text = built["gbdt+text"].get_params()
    assert {k: text[k] for k in ("text_components", "text_window_days", "text_encoder")} == {
        "text_components": 8, "text_window_days": 90, "text_encoder": "use"}
    assert set(text) - {"text_components", "text_window_days", "text_encoder"} == set(
        built["gbdt"].get_params())
    assert all(m.name == n for n, m in built.items())


def test_settings_of_churnguard_toml_per_kind():
    sequence = {"encoder", "d_model", "n_layers", "max_len", "use_text", "pretrain",
                "pretrain_epochs", "pretrain_max_customers"}
    fine_tuning = {"epochs", "tune_text", "text_lr"}
    control = {"d_model", "n_layers", "max_len", "use_text"} | fine_tuning
    assert {n: set(k.settings) for n, k in catalog.KINDS.items() if k.settings} == {
        "behaviour": sequence | fine_tuning, "behaviour+gbdt": sequence,
        "behaviour_gru": control, "behaviour_transformer": control}


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown model 'lstm'; known: recency, btyd, gbdt"):
        catalog.build("lstm")
    with pytest.raises(ValueError, match="the demo does not run 'ensemble'"):
        catalog.demo_models(["ensemble"])


def test_the_demo_size():
    """The demo's models (make demo's figures depend on these numbers)."""
    assert catalog.DEMO_MODELS == ("recency", "btyd", "gbdt", "behaviour", "behaviour+gbdt")
    models = {m.name: m for m in catalog.demo_models(pretrained="x/encoder.pt")}
    assert models["recency"].get_params() == catalog.build("recency").get_params()
    assert models["btyd"].get_params() == catalog.build("btyd").get_params()
    assert models["gbdt"].get_params() == catalog.build("gbdt", learning_rate=0.06).get_params()
    shared = dict(encoder="gru", d_model=32, max_len=32, pretrain="x/encoder.pt",
                  pretrain_epochs=3, pretrain_max_customers=8_000)
    assert models["behaviour"].get_params() == BehaviourChurnModel(epochs=3,
                                                                   **shared).get_params()
    assert models["behaviour+gbdt"].get_params() == BehaviourGBDTModel(
        learning_rate=0.06, **shared).get_params()


def test_demo_pretrains_its_encoder_as_its_models_would_inside_fit() -> None:
    """The demo's separate pretraining step runs what pretrain="auto" runs for models of the
    same size, so the champion, retrained with "auto", follows the backtested recipe."""
    config = catalog.demo_pretrain_config()
    for model in catalog.demo_models(["behaviour", "behaviour+gbdt"]):
        assert model.pretrain == "auto"
        assert model.encoder_config() == config.encoder
        assert model.pretrain_config() == config
        assert (model.pretrain_epochs, model.pretrain_max_customers, model.max_len, model.seed) == (
            config.epochs, config.max_customers, config.max_len, config.seed)
    assert config.encoder.d_ff == 2 * config.encoder.d_model == 64
    assert [m.name for m in catalog.demo_models(["behaviour", "behaviour+gbdt"],
                                                pretrained="x/encoder.pt")] == [
        "behaviour", "behaviour+gbdt"]
