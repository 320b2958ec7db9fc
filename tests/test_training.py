"""Which models `train` and `backtest` build from names and [models.behaviour]."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from churnguard.config import BehaviourSettings
from churnguard.models.behaviour.model import BehaviourChurnModel, BehaviourGBDTModel
from churnguard.models.ensemble import StackedEnsemble
from churnguard.registry import _dumps
from churnguard.training import configured_models

NAMES = ["recency", "gbdt", "behaviour", "behaviour+gbdt", "behaviour_transformer", "ensemble"]


def test_without_settings_every_model_keeps_its_defaults(tmp_path: Path) -> None:
    assert configured_models(NAMES, BehaviourSettings(), root=tmp_path) == NAMES


def test_settings_reach_each_behaviour_model_as_far_as_it_has_them(tmp_path: Path) -> None:
    settings = BehaviourSettings(encoder="transformer", d_model=32, max_len=64, epochs=3,
                                 tune_text=True)
    recency, gbdt, fine_tuned, hybrid, control, ensemble = configured_models(
        NAMES, settings, root=tmp_path)
    assert (recency, gbdt) == ("recency", "gbdt")

    assert isinstance(fine_tuned, BehaviourChurnModel)
    assert (fine_tuned.encoder, fine_tuned.d_model, fine_tuned.max_len, fine_tuned.epochs,
            fine_tuned.tune_text, fine_tuned.pretrain) == ("transformer", 32, 64, 3, True, "auto")
    # Settings not given keep the model's defaults.
    assert fine_tuned.lr == BehaviourChurnModel().lr

    # The hybrid does not fine-tune: epochs and tune_text are not its settings.
    assert isinstance(hybrid, BehaviourGBDTModel)
    assert (hybrid.encoder, hybrid.d_model, hybrid.max_len) == ("transformer", 32, 64)
    assert not hasattr(hybrid, "tune_text") and not hasattr(hybrid, "epochs")

    # The supervised control keeps its preset encoder, layers and "no pretraining".
    assert (control.name, control.encoder, control.n_layers, control.pretrain,
            control.d_model, control.epochs) == ("behaviour_transformer", "transformer", 2,
                                                 "none", 32, 3)

    # The ensemble's behaviour member is configured; the others stay names.
    assert isinstance(ensemble, StackedEnsemble)
    btyd, trees, member = ensemble.members
    assert (btyd, trees) == ("btyd", "gbdt")
    assert isinstance(member, BehaviourChurnModel) and member.d_model == 32
    # ... and the registry stores that member's settings, not an object's repr.
    stored = json.loads(_dumps(ensemble.get_params()))
    assert stored["members"][2]["name"] == "behaviour"
    assert stored["members"][2]["params"]["d_model"] == 32


def test_an_encoder_file_is_read_from_the_project_folder(tmp_path: Path) -> None:
    (tmp_path / "pretrained").mkdir()
    (tmp_path / "pretrained" / "encoder.pt").write_bytes(b"")
    settings = BehaviourSettings(pretrain="pretrained/encoder.pt")
    (model,) = configured_models(["behaviour"], settings, root=tmp_path)
    assert model.pretrain == str((tmp_path / "pretrained" / "encoder.pt").resolve())

    with pytest.raises(ValueError, match=r"names .*elsewhere\.pt, which does not exist; run "
                                         r"`churnguard pretrain` first"):
        configured_models(["gbdt", "behaviour"], BehaviourSettings(pretrain="elsewhere.pt"),
                          root=tmp_path)
