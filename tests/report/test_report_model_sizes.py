"""The leaderboard says how long each model took and what size the sequence models were trained at
(the backtest document's ``model_details``, written by ``save_backtest``)."""

from __future__ import annotations

import copy
import re

from report_fixtures import BACKTEST, synthetic_report_data

from churnguard.report.html import build_html

BEHAVIOUR_ROWS = [
    {"name": "behaviour", "roc_auc": 0.8011, "pr_auc": 0.6301, "brier": 0.1612, "ece": 0.0201,
     "lift_at_10": 2.41, "recall_at_10": 0.2455},
    {"name": "behaviour+gbdt", "roc_auc": 0.8200, "pr_auc": 0.6512, "brier": 0.1561,
     "ece": 0.0190, "lift_at_10": 2.50, "recall_at_10": 0.2540},
]
PRETRAINING = {"customers": 8000, "epochs": 3, "epochs_run": 2, "seconds": 31.04,
               "cutoff": "2024-10-03"}
DETAILS = {
    "recency": {"seconds": 0.04},
    "gbdt": {"seconds": 61.58, "trees": 1031, "learning_rate": 0.06},
    "behaviour": {"seconds": 126.4, "encoder": "gru", "max_len": 64, "use_text": True,
                  "d_model": 64, "epochs": 4, "epochs_run": 3, "pretraining": PRETRAINING},
    "behaviour+gbdt": {"seconds": 1234.5, "encoder": "gru", "max_len": 64, "use_text": False,
                       "d_model": 32, "pretraining": PRETRAINING, "trees": 812,
                       "learning_rate": 0.03},
}


def size_rows(page: str) -> dict[str, list[str]]:
    table = re.search(r'<table class="sizes">(.*?)</table>', page, re.S).group(1)
    return {name: re.findall(r"<td[^>]*>(.*?)</td>", cells)
            for name, cells in re.findall(r'<tr><th scope="row">(.*?)</th>(.*?)</tr>', table,
                                          re.S)}


def test_sizes_and_times_of_the_backtested_models() -> None:
    backtest = copy.deepcopy(BACKTEST)
    backtest["models"][3:3] = BEHAVIOUR_ROWS
    backtest["model_details"] = DETAILS
    page = build_html(synthetic_report_data(backtest=backtest))
    leaderboard = page.split('<section id="leaderboard">')[1].split("</section>")[0]
    assert "<h3>How the models were trained</h3>" in leaderboard
    rows = size_rows(leaderboard)
    # In leaderboard order; btyd has no details and the oracle is not a model: both left out.
    assert list(rows) == ["recency", "gbdt", "behaviour", "behaviour+gbdt"]
    assert rows["recency"] == ["0.0 s", "—"]
    assert rows["gbdt"] == ["61.6 s", "1,031 trees at learning rate 0.06"]
    assert rows["behaviour"] == [
        "126.4 s",
        "GRU encoder, 64 dimensions, newest 64 events per customer; pretrained without labels "
        "on 8,000 customers&#x27; events before 2024-10-03, 2 of at most 3 epochs (31.0 s); "
        "fine-tuned 3 of at most 4 epochs"]
    assert rows["behaviour+gbdt"] == [
        "1,234.5 s",
        "GRU encoder, 32 dimensions, newest 64 events per customer (no review text); pretrained "
        "without labels on 8,000 customers&#x27; events before 2024-10-03, 2 of at most 3 "
        "epochs (31.0 s); the vectors, frozen, are added to the trees&#x27; features; 812 "
        "trees at learning rate 0.03"]


def test_a_model_trained_from_scratch_says_so() -> None:
    backtest = copy.deepcopy(BACKTEST)
    backtest["models"][3:3] = [dict(BEHAVIOUR_ROWS[0], name="behaviour_gru")]
    backtest["model_details"] = {"behaviour_gru": {
        "seconds": 80.0, "encoder": "gru", "max_len": 256, "use_text": True, "d_model": 64,
        "epochs": 8, "epochs_run": 8}}
    rows = size_rows(build_html(synthetic_report_data(backtest=backtest)))
    assert rows == {"behaviour_gru": [
        "80.0 s", "GRU encoder, 64 dimensions, newest 256 events per customer; trained from "
        "scratch, 8 of at most 8 epochs"]}


def test_no_details_no_table(report_data) -> None:
    page = build_html(report_data)
    assert "How the models were trained" not in page and 'class="sizes"' not in page
    backtest = dict(BACKTEST, model_details="not a mapping")
    assert "How the models were trained" not in build_html(synthetic_report_data(backtest=backtest))
