"""Gamma-Gamma golden numbers on CDNOW, and the value models on a small simulated shop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from churnguard.intervene.value import GammaGammaModel

CDNOW = Path(__file__).resolve().parents[1] / "data" / "CDNOW_sample.txt"


@pytest.fixture(scope="module")
def cdnow_repeat_spend() -> pd.DataFrame:
    """Calibration period of Fader & Hardie's note (39 weeks to 1997-09-30): per customer the
    number of repeat purchase days and the mean value of those days."""
    raw = pd.read_csv(CDNOW, sep=r"\s+", header=None, dtype={2: str},
                      names=["master", "customer", "date", "cds", "value"])
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    days = (raw[raw["date"] <= "1997-09-30"].groupby(["customer", "date"])["value"].sum()
            .reset_index())
    days["first"] = days.groupby("customer")["date"].transform("min")
    repeat = days[days["date"] > days["first"]]
    return repeat.groupby("customer")["value"].agg(x="size", m="mean")


def test_gamma_gamma_matches_fader_hardie_2013_on_cdnow(cdnow_repeat_spend: pd.DataFrame) -> None:
    # "The Gamma-Gamma Model of Monetary Value" (Fader & Hardie 2013): 946 customers,
    # p = 6.25, q = 3.74, gamma = 15.44; lifetimes' GammaGammaFitter gives the same.
    assert len(cdnow_repeat_spend) == 946
    gg = GammaGammaModel().fit(cdnow_repeat_spend["x"].to_numpy(),
                               cdnow_repeat_spend["m"].to_numpy())
    assert gg.params_["p"] == pytest.approx(6.25, abs=0.01)
    assert gg.params_["q"] == pytest.approx(3.74, abs=0.01)
    assert gg.params_["v"] == pytest.approx(15.44, abs=0.02)
    # The paper's mean spend p v / (q - 1) = 35.17, and a customer's expected spend is shrunk
    # from their own mean toward it, more so with fewer transactions.
    assert gg.mean_spend_ == pytest.approx(35.17, abs=0.02)
    few, many = gg.conditional_expected_spend(np.array([1, 10]), np.array([100.0, 100.0]))
    assert gg.mean_spend_ < few < many < 100.0


def test_gamma_gamma_errors_and_not_fitted() -> None:
    with pytest.raises(NotFittedError):
        _ = GammaGammaModel().mean_spend_
    with pytest.raises(ValueError, match="same shape"):
        GammaGammaModel().fit(np.array([1, 2]), np.array([1.0]))
    with pytest.raises(ValueError, match="finite and > 0"):
        GammaGammaModel().fit(np.array([1, 2, 3]), np.array([1.0, -2.0, 3.0]))
    with pytest.raises(ValueError, match="at least 3 customers"):
        GammaGammaModel().fit(np.array([0, 2, 0]), np.array([0.0, 2.0, 0.0]))
