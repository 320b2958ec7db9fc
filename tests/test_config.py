"""churnguard.toml: the [models.behaviour] section fails loudly on a typo or a contradiction."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnguard.config import NEW_PROJECT_TOML, ConfigError, load_config


def project_with(tmp_path: Path, behaviour: str) -> Path:
    path = tmp_path / "churnguard.toml"
    path.write_text(NEW_PROJECT_TOML.replace("[models.behaviour]\n",
                                             "[models.behaviour]\n" + behaviour))
    return path


def test_behaviour_settings_are_read(tmp_path: Path) -> None:
    config = load_config(project_with(tmp_path, 'encoder = "transformer"\nd_model = 32\n'))
    assert config.models.behaviour.given() == {"encoder": "transformer", "d_model": 32}


@pytest.mark.parametrize(("lines", "message"), [
    ("tune_txt = true\n", "models.behaviour.tune_txt: Extra inputs are not permitted"),
    ("tune_text = true\nuse_text = false\n",
     "tune_text = true fine-tunes the text encoder, which use_text = false leaves out"),
    ('encoder = "lstm"\n', "models.behaviour.encoder: Input should be 'gru' or 'transformer'"),
    ("d_model = 0\n", "models.behaviour.d_model: Input should be greater than 0"),
    ('pretrain = "none"\n', "what the supervised controls do: backtest or train behaviour_gru"),
])
def test_a_wrong_setting_is_named(tmp_path: Path, lines: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(project_with(tmp_path, lines))
    assert message in str(raised.value)
