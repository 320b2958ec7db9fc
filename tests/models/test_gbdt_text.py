"""``gbdt+text`` on a Chinese-only simulated shop: the backtest runs with text, and the text
columns carry what the Chinese texts say, which they do not through the English-only path.

The figures (does the text raise the backtest's ROC-AUC?) are the benchmark's:
``benchmarks/bench_text_languages.py --churn`` (RESULTS.md "text_languages_churn").
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from churnguard.config import ChurnDefinition, IngestConfig
from churnguard.evaluate import backtest
from churnguard.features.text import CustomerTextFeatures, encode, text_encoder
from churnguard.ingest import ingest_files
from churnguard.models.gbdt_text import TextGBDTModel
from churnguard.simulate import simulate
from churnguard.snapshots import Snapshot
from churnguard.store import Store

START = dt.date(2025, 1, 1)


@pytest.fixture(scope="module")
def zh_shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zh_shop")
    sim = simulate(n_users=1500, days=365, seed=3, out_dir=folder / "sim", start=START,
                   zh_share=1.0)
    with Store.open(folder / "churnguard.duckdb") as store:
        for kind in ("events", "users", "items", "campaigns"):
            ingest_files(store, kind=kind, files=[sim.paths[kind]],
                         config=IngestConfig(future_events="allow"))
        yield store, sim


def _topic_accuracy(store, features: CustomerTextFeatures, texts: pd.DataFrame) -> float:
    """5-fold accuracy of telling a text's true topic from its text columns."""
    vectors = encode(text_encoder(store, features.encoder), texts["text"].tolist())
    X = (vectors.astype(float) - features.mean_) @ features.components_.T
    return float(np.mean(cross_val_score(LogisticRegression(max_iter=2000), X,
                                         texts["topic"].to_numpy(), cv=5)))


@pytest.mark.slow
def test_backtest_with_text_on_a_chinese_only_shop(zh_shop):
    store, sim = zh_shop
    result = backtest(store, definition=ChurnDefinition(),
                      test_cutoff=START + dt.timedelta(days=272),
                      models=["gbdt", TextGBDTModel(n_jobs=1)])
    aucs = {m.name: m.roc_auc for m in result.metrics}
    assert set(aucs) == {"gbdt", "gbdt+text"} and all(math.isfinite(a) for a in aucs.values())
    model = result.models["gbdt+text"]
    text_columns = model.text_.columns
    assert set(text_columns) <= set(model.feature_names_)

    # The test rows' text columns are not degenerate: customers who wrote read differently.
    rows = result.predictions.index.to_frame(index=False)
    frame = model.text_.transform(store, rows)
    wrote = frame[frame["text_count_90d"] > 0]
    assert len(wrote) > 100
    pcs = [c for c in text_columns if c.startswith("text_pc")]
    assert (wrote[pcs].std() > 0.02).all()
    assert len(wrote[pcs].round(6).drop_duplicates()) > len(wrote) // 4

    # What the texts say survives in the columns through USE, not through MiniLM (Chinese
    # texts mostly [UNK]): the true topic of each distinct text from its columns.
    truth = pd.read_parquet(sim.paths["truth_texts"])
    events = pd.read_parquet(sim.paths["events"], columns=["event_id", "text"])
    texts = truth.merge(events, on="event_id").drop_duplicates("text")
    assert texts["language"].isin(["zh", "mixed"]).all()
    train_rows = rows.assign(cutoff=pd.Timestamp(result.train_cutoffs[-1]))
    use = _topic_accuracy(store, model.text_, texts)
    minilm = _topic_accuracy(store, CustomerTextFeatures(encoder="minilm").fit(store, train_rows),
                             texts)
    assert use >= 0.8, use
    assert minilm < use - 0.15, (minilm, use)


def test_gbdt_text_needs_a_snapshot_that_knows_its_store():
    features = pd.DataFrame({"orders_total": [1.0, 2.0]},
                            index=pd.MultiIndex.from_tuples(
                                [("u1", pd.Timestamp("2025-03-01")),
                                 ("u2", pd.Timestamp("2025-03-01"))], names=["user_id", "cutoff"]))
    snapshot = Snapshot(features=features, labels=pd.Series([0.0, 1.0], index=features.index))
    with pytest.raises(ValueError, match="reads the customers' texts from the store"):
        TextGBDTModel().fit(snapshot)
