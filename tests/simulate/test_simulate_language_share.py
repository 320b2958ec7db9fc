"""``zh_share`` / ``--zh-share``: the share of customers who write in Chinese, in every region.

Only the language of the texts moves: the same seed gives the same orders and the same churn
truth with or without it, and without it the shop is the one it always was.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from churnguard.cli import cli
from churnguard.simulate import continue_shop, simulate
from churnguard.text.language import chinese_majority

SMALL = {"n_users": 600, "days": 150, "seed": 4}


def _texts(out) -> pd.DataFrame:
    events = pd.read_parquet(out / "events.parquet")
    return events[events["type"].isin(["review", "support_ticket", "search"])]


def test_chinese_only_shop_writes_every_text_in_chinese(tmp_path):
    zh = simulate(**SMALL, out_dir=tmp_path / "zh", zh_share=1.0)
    users = pd.read_parquet(zh.paths["users"])
    assert set(users["language"]) == {"zh"}
    texts = _texts(zh.out_dir)
    assert len(texts) > 300
    # Every text is mostly Chinese (the composer's mixed texts carry a few English words).
    assert chinese_majority(texts["text"].tolist()).all()
    truth = pd.read_parquet(zh.paths["truth_texts"])
    assert set(truth["language"]) <= {"zh", "mixed"}
    assert json.loads(zh.paths["manifest"].read_text())["zh_share"] == 1.0


def test_english_only_shop_writes_no_chinese(tmp_path):
    en = simulate(**SMALL, out_dir=tmp_path / "en", zh_share=0.0)
    assert set(pd.read_parquet(en.paths["users"])["language"]) == {"en"}
    assert not chinese_majority(_texts(en.out_dir)["text"].tolist()).any()


def test_share_changes_only_the_language_of_texts(tmp_path):
    default = simulate(**SMALL, out_dir=tmp_path / "default")
    zh = simulate(**SMALL, out_dir=tmp_path / "zh", zh_share=1.0)
    a, b = (pd.read_parquet(r.paths["events"]) for r in (default, zh))
    assert a.drop(columns="text").equals(b.drop(columns="text"))
    assert not a["text"].equals(b["text"])
    for name in ("truth_churn", "campaigns"):
        assert pd.read_parquet(default.paths[name]).equals(pd.read_parquet(zh.paths[name])), name
    # The default shop's manifest does not mention the option.
    assert "zh_share" not in json.loads(default.paths["manifest"].read_text())


def test_same_seed_and_share_give_identical_files(tmp_path):
    a = simulate(**SMALL, out_dir=tmp_path / "a", zh_share=0.5)
    b = simulate(**SMALL, out_dir=tmp_path / "b", zh_share=0.5)
    assert a.paths["events"].read_bytes() == b.paths["events"].read_bytes()
    share = (pd.read_parquet(a.paths["users"])["language"] == "zh").mean()
    assert 0.4 < share < 0.6


def test_continuation_newcomers_keep_the_share(tmp_path):
    shop = simulate(n_users=300, days=100, seed=2, out_dir=tmp_path / "shop", keep_state=True,
                    zh_share=1.0)
    until = shop.cutoffs[-1] + dt.timedelta(days=60)
    result = continue_shop(shop.out_dir, None, until=until, out_dir=tmp_path / "next")
    assert result.n_new_users > 0
    new = pd.read_parquet(result.paths["users"])
    assert set(new["language"]) == {"zh"}


@pytest.mark.parametrize("share", [-0.1, 1.5, "1", True])
def test_bad_share_is_a_precise_error(tmp_path, share):
    with pytest.raises(ValueError, match="zh_share must be a number from 0 to 1"):
        simulate(**SMALL, out_dir=tmp_path / "x", zh_share=share)


def test_cli_option_is_documented_and_checked(tmp_path):
    runner = CliRunner()
    help_text = runner.invoke(cli, ["simulate", "--help"]).output
    assert "--zh-share" in help_text and "Chinese-only" in help_text
    bad = runner.invoke(cli, ["simulate", "--users", "50", "--days", "100", "--zh-share", "2",
                              "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "--zh-share" in bad.output
    ok = runner.invoke(cli, ["simulate", "--users", "50", "--days", "100", "--zh-share", "1",
                             "--out", str(tmp_path / "ok")])
    assert ok.exit_code == 0, ok.output
    assert set(pd.read_parquet(tmp_path / "ok" / "users.parquet")["language"]) == {"zh"}
