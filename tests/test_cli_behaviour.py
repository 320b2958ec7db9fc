"""`churnguard pretrain` on a tiny shop, and the behaviour models that `train` and `backtest`
build from [models.behaviour] in churnguard.toml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from churnguard.cli import main
from churnguard.project import Project
from churnguard.registry import list_models, load_model
from churnguard.simulate import simulate


def test_pretrain_writes_an_encoder_and_its_logs(tmp_path: Path, capsys) -> None:
    sim = simulate(n_users=300, days=150, seed=2, out_dir=tmp_path / "data")
    assert main(["init", str(tmp_path / "p")]) == 0
    assert main(["ingest", "events", str(sim.paths["events"]), "--project",
                 str(tmp_path / "p")]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--epochs", "1", "--project", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "Pretrained a gru encoder on" in out
    folder = tmp_path / "p" / "pretrained"
    assert (folder / "encoder.pt").exists()
    assert any((folder / "tensorboard").rglob("events.out.tfevents.*"))
    assert main(["pretrain", "--as-of", "not-a-date", "--project", str(tmp_path / "p")]) == 2
    # Two processes (torchrun, gloo): the same files, and the summary says how it ran.
    two = tmp_path / "two"
    assert main(["pretrain", "--epochs", "1", "--nproc", "2", "--out", str(two),
                 "--project", str(tmp_path / "p")]) == 0
    assert "Pretrained a gru encoder on" in capsys.readouterr().out
    assert (two / "encoder.pt").exists() and any((two / "tensorboard").rglob("events.*"))
    assert json.loads((two / "summary.json").read_text())["processes"] == 2


TINY_BEHAVIOUR = """[models.behaviour]
d_model = 8
max_len = 16
pretrain = "pretrained/encoder.pt"
epochs = 1
tune_text = true
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project of 600 simulated customers over 420 days whose churnguard.toml sizes the
    behaviour models tiny, fine-tunes the text encoder and reads the encoder of `pretrain`."""
    root = tmp_path_factory.mktemp("behaviour-shop")
    sim = simulate(n_users=600, days=420, seed=5, out_dir=root / "data")
    assert main(["init", str(root)]) == 0
    toml = root / "churnguard.toml"
    toml.write_text(toml.read_text().replace("[models.behaviour]\n", TINY_BEHAVIOUR))
    for kind in ("items", "users", "events"):
        assert main(["ingest", kind, str(sim.paths[kind]), "--project", str(root)]) == 0
    return root


def test_a_missing_encoder_file_stops_train_and_backtest_before_any_work(
        shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    for verb in (["train", "--models", "behaviour"],
                 ["backtest", "--models", "gbdt,ensemble"]):
        assert main([*verb, "--project", str(shop)]) == 2
        err = capsys.readouterr().err
        assert f"models.behaviour.pretrain in churnguard.toml names {shop / 'pretrained'}" in err
        assert "run `churnguard pretrain` first" in err
    assert not (shop / "pretrained").exists()


def test_pretrain_then_train_use_the_projects_behaviour_settings(
        shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from churnguard.models.behaviour.pretrain import load_encoder

    assert main(["pretrain", "--epochs", "1", "--max-customers", "200",
                 "--project", str(shop)]) == 0
    encoder, summary = load_encoder(shop / "pretrained" / "encoder.pt")
    # The encoder has the width the behaviour models are configured with, so they can use it.
    assert summary["encoder_config"]["d_model"] == 8 == encoder.dim
    capsys.readouterr()

    assert main(["train", "--models", "behaviour", "--train-cutoffs", "1",
                 "--project", str(shop)]) == 0
    assert "it is now the champion" in capsys.readouterr().out
    with Project.load(shop).open_store(read_only=True) as store:
        (version,) = list_models(store)
        model = load_model(store, version.version)
    # `churnguard models VERSION` shows the settings it was trained with.
    assert main(["models", version.version, "--project", str(shop)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["version"], shown["name"], shown["champion"]) == (version.version,
                                                                     "behaviour", True)
    params = shown["config"]["model"]
    assert (params["d_model"], params["max_len"], params["epochs"], params["tune_text"]) == (
        8, 16, 1, True)
    assert params["pretrain"] == str((shop / "pretrained" / "encoder.pt").resolve())
    # It fine-tuned from that encoder, with its own copy of MiniLM.
    assert model.pretrained_["encoder_config"]["d_model"] == 8
    assert model.network_.text_tower is not None
    assert len(model.history_) == 1

    assert main(["models", "v-nonexistent", "--project", str(shop)]) == 2
    assert "no model version 'v-nonexistent'; `churnguard models` lists them" in (
        capsys.readouterr().err)
