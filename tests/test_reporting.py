"""What the report is drawn from: the champion's feature importance, whatever model it is."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from churnguard.reporting import BEHAVIOUR_PATTERN, feature_importance


class _Trees:
    def feature_importance(self) -> pd.Series:
        return pd.Series({"events_30d": 50.0, "behaviour_emb_0": 30.0, "behaviour_emb_1": 25.0,
                          "days_since_last_visit": 10.0}, name="gain")


def test_a_model_with_its_own_importance_is_asked() -> None:
    model = SimpleNamespace(feature_importance=lambda: pd.Series({"a": 2.0, "b": 1.0}))
    assert feature_importance(model).to_dict() == {"a": 2.0, "b": 1.0}


def test_behaviour_gbdt_sums_the_vector_into_one_entry() -> None:
    model = SimpleNamespace(gbdt_=_Trees(),
                            embedding_columns_=["behaviour_emb_0", "behaviour_emb_1"])
    importance = feature_importance(model)
    assert importance.to_dict() == {BEHAVIOUR_PATTERN: 55.0, "events_30d": 50.0,
                                     "days_since_last_visit": 10.0}
    assert list(importance.index) == [BEHAVIOUR_PATTERN, "events_30d", "days_since_last_visit"]


def test_a_model_without_importance_gives_an_empty_series() -> None:
    assert feature_importance(SimpleNamespace()).empty


def test_the_pattern_is_named_as_the_model_names_it() -> None:
    from churnguard.models.behaviour.model import BEHAVIOUR_COLUMN

    assert BEHAVIOUR_PATTERN == BEHAVIOUR_COLUMN
