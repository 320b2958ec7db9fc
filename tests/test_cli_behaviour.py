"""`churnguard pretrain` on a tiny shop: writes the encoder, checkpoints and TensorBoard logs."""

from __future__ import annotations

from pathlib import Path

from churnguard.cli import main
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
