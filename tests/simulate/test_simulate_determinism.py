"""Same seed: byte-identical Parquet content; another seed: another shop."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from churnguard.simulate import simulate

FILES = ("events", "users", "items", "campaigns", "truth_churn", "truth_campaigns", "truth_users")


def _run(path, seed):
    return simulate(n_users=1500, days=200, seed=seed, out_dir=path)


def test_same_seed_gives_identical_files(tmp_path):
    a = _run(tmp_path / "a", 5)
    b = _run(tmp_path / "b", 5)
    for name in FILES:
        assert pq.read_table(a.paths[name]).equals(pq.read_table(b.paths[name])), name
        assert a.paths[name].read_bytes() == b.paths[name].read_bytes(), name
    assert a.paths["manifest"].read_text() == b.paths["manifest"].read_text()


def test_different_seed_gives_different_shop(tmp_path):
    a = _run(tmp_path / "a", 5)
    c = _run(tmp_path / "c", 6)
    for name in ("events", "users", "truth_churn"):
        fa, fc = pd.read_parquet(a.paths[name]), pd.read_parquet(c.paths[name])
        assert not fa.equals(fc), name
