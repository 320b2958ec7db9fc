"""The public-campaign benchmark judges auto's choice on the mean over its random splits."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_uplift_public as bench  # noqa: E402


def _split(seed: int, chosen: float, t_logistic: float) -> dict:
    return {"seed": seed, "chosen": "s_logistic",
            "held_out": {"s_logistic": {"qini": chosen}, "t_logistic": {"qini": t_logistic},
                         bench.PLAIN: {"qini": 0.004}},
            "differences": {"t_logistic": {"difference": chosen - t_logistic,
                                           "low": -0.001, "high": 0.001}}}


def test_one_unlucky_split_does_not_decide_the_check():
    text = bench.render_splits([_split(0, 0.0046, 0.0047), _split(1, 0.0056, 0.0049)])
    assert "met on the mean over the 2 splits (0.00510 vs 0.00480)" in text
    assert "at least as high on 1 of 2 splits" in text
    assert "| 0 | s_logistic | 0.00460 | 0.00470 | 0.00400 | -0.00010 |" in text


def test_a_choice_worse_on_the_mean_is_reported_missed():
    text = bench.render_splits([_split(0, 0.0040, 0.0047), _split(1, 0.0050, 0.0049)])
    assert "MISSED on the mean over the 2 splits (0.00450 vs 0.00480)" in text
