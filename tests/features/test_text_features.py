"""Per-customer text columns (features/text.py): a Chinese complaint moves its writer's columns.

Events go through the normal ingest (CSV files, ``ingest_files``); the columns are what
``gbdt+text`` reads (``CustomerTextFeatures``), through USE multilingual, the default.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from churnguard.config import IngestConfig
from churnguard.features.text import (
    CustomerTextFeatures,
    customer_text_vectors,
    customer_texts,
)
from churnguard.ingest import ingest_files
from churnguard.store import Store

PRAISE = "物流很快，包装完好，非常满意"
COMPLAINT = "快递太慢了，等了两个星期还没到，再也不买了"
OTHER_PRAISE = "发货速度快，物流给力，很满意"
BEFORE, NEXT = pd.Timestamp("2025-03-15"), pd.Timestamp("2025-04-01")
COLUMNS = ["event_id", "user_id", "ts", "type", "amount", "text", "rating"]


def _write(path, rows) -> str:
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path, index=False)
    return str(path)


def _ingest(store: Store, path: str) -> None:
    ingest_files(store, kind="events", files=[path],
                 config=IngestConfig(future_events="allow"))


@pytest.fixture
def shop(tmp_path):
    """Three customers with the same history: an order and a 5-star Chinese review each."""
    store = Store.in_memory()
    rows = []
    for k, user in enumerate(("u1", "u2", "u3")):
        rows += [(f"o{k}", user, "2025-01-10T10:00:00Z", "order", 30.0, None, None),
                 (f"r{k}", user, "2025-02-01T10:00:00Z", "review", None, PRAISE, 5)]
    _ingest(store, _write(tmp_path / "history.csv", rows))
    yield store
    store.close()


def _rows(*cutoffs: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame([(u, c) for c in cutoffs for u in ("u1", "u2", "u3")],
                        columns=["user_id", "cutoff"])


def _add_new_reviews(store: Store, tmp_path) -> None:
    """u1 writes a 1-star complaint, u2 a 5-star praise, both on 2025-03-20; u3 nothing."""
    _ingest(store, _write(tmp_path / "new.csv", [
        ("c1", "u1", "2025-03-20T09:00:00Z", "review", None, COMPLAINT, 1),
        ("p2", "u2", "2025-03-20T09:00:00Z", "review", None, OTHER_PRAISE, 5)]))


def test_a_chinese_complaint_moves_its_writers_text_vectors(shop, tmp_path):
    before = customer_text_vectors(shop, _rows(NEXT))
    _add_new_reviews(shop, tmp_path)
    after = customer_text_vectors(shop, _rows(NEXT))
    assert before.count.tolist() == [1, 1, 1]
    assert after.count.tolist() == [2, 2, 1]
    # The three customers read the same before; u3, who wrote nothing new, still does.
    assert np.allclose(before.mean[0], before.mean[2]) and np.allclose(before.mean[1],
                                                                          before.mean[2])
    np.testing.assert_array_equal(after.mean[2], before.mean[2])
    # u1's newest text is the complaint: far from the praise it replaced, and farther from the
    # praise of delivery u2 wrote the same day than the two praises are from each other.
    u1, u2, u3 = after.last
    assert float(u1 @ before.last[0]) < 0.6
    assert float(u1 @ u2) < float(u2 @ u3) - 0.2
    assert float(np.linalg.norm(after.mean[0] - before.mean[0])) > 0.2


def test_a_chinese_complaint_moves_the_models_text_columns_at_the_next_cutoff(shop, tmp_path):
    _add_new_reviews(shop, tmp_path)
    rows = _rows(BEFORE, NEXT)
    features = CustomerTextFeatures(components=2).fit(shop, rows)
    frame = features.transform(shop, rows)
    assert list(frame.columns) == ["text_count_90d", "text_pc1_mean", "text_pc2_mean",
                                   "text_pc1_last", "text_pc2_last"]
    at_before = frame.xs(BEFORE, level="cutoff")
    at_next = frame.xs(NEXT, level="cutoff")
    pcs = ["text_pc1_last", "text_pc2_last"]
    # Point in time: on 2025-03-15 nobody has written the new reviews yet.
    assert at_before["text_count_90d"].tolist() == [1, 1, 1]
    assert at_before[pcs].nunique().max() == 1
    # At the next cutoff the complaint has moved u1's columns, and not like u2's praise did.
    assert at_next["text_count_90d"].tolist() == [2, 2, 1]
    moved = np.abs(at_next.loc["u1", pcs].to_numpy() - at_before.loc["u1", pcs].to_numpy())
    assert moved.max() > 0.1
    np.testing.assert_array_equal(at_next.loc["u3"].to_numpy(), at_before.loc["u3"].to_numpy())
    complaint, praise = at_next.loc["u1", pcs].to_numpy(), at_next.loc["u2", pcs].to_numpy()
    old_praise = at_next.loc["u3", pcs].to_numpy()
    assert np.linalg.norm(complaint - old_praise) > 1.5 * np.linalg.norm(praise - old_praise)
    # The first component (the main way these texts differ) sets the complaint apart.
    assert np.sign(complaint[0]) != np.sign(praise[0]) == np.sign(old_praise[0])


def test_texts_are_read_strictly_before_the_cutoff_within_the_window(shop, tmp_path):
    _ingest(shop, _write(tmp_path / "edge.csv", [
        ("at", "u1", "2025-04-01T00:00:00Z", "review", None, COMPLAINT, 1),   # at the cutoff
        ("old", "u2", "2024-12-31T23:00:00Z", "review", None, COMPLAINT, 1),  # 91 days before
        ("tk", "u3", "2025-03-01T08:00:00Z", "support_ticket", None, COMPLAINT, None)]))
    texts = customer_texts(shop, _rows(NEXT), window_days=90)
    assert texts.groupby("user_id")["text"].apply(list).to_dict() == {
        "u1": [PRAISE], "u2": [PRAISE], "u3": [PRAISE, COMPLAINT]}


def test_refits_agree_and_a_shop_without_texts_gets_empty_columns(shop, tmp_path):
    _add_new_reviews(shop, tmp_path)
    rows = _rows(NEXT)
    a = CustomerTextFeatures(components=2).fit(shop, rows)
    b = CustomerTextFeatures(components=2).fit(shop, rows.iloc[::-1])
    np.testing.assert_array_equal(a.components_, b.components_)
    empty = Store.in_memory()
    frame = CustomerTextFeatures(components=3).fit(empty, rows).transform(empty, rows)
    assert frame["text_count_90d"].tolist() == [0, 0, 0]
    assert frame.drop(columns="text_count_90d").isna().all().all()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"components": 0}, "components must be an integer from 1 to 384"),
    ({"encoder": "bert"}, "unknown text encoder 'bert'"),
])
def test_bad_settings_are_precise_errors(shop, kwargs, message):
    with pytest.raises(ValueError, match=message):
        CustomerTextFeatures(**kwargs).fit(shop, _rows(NEXT))


def test_window_and_fit_order_errors(shop):
    with pytest.raises(ValueError, match="window_days must be an integer >= 1"):
        customer_texts(shop, _rows(NEXT), window_days=0)
    with pytest.raises(ValueError, match="not fitted yet"):
        CustomerTextFeatures().transform(shop, _rows(NEXT))
    with pytest.raises(ValueError, match="needs columns user_id and cutoff"):
        customer_texts(shop, pd.DataFrame({"user_id": ["u1"]}), window_days=90)


def test_cutoffs_with_a_time_zone_are_read_as_utc(shop):
    rows = _rows(NEXT).assign(cutoff=lambda f: f["cutoff"].dt.tz_localize(dt.UTC))
    assert customer_text_vectors(shop, rows).count.tolist() == [1, 1, 1]
