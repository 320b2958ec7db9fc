"""A stacked ensemble: a logistic regression on the members' log-odds, fitted out of time.

Stacked generalisation (Wolpert 1992, "Stacked generalization", Neural Networks 5(2), 241-259):
the members are fitted on the training cutoffs; a second-level model learns how to combine them
on data none of them was fitted on -- here the out-of-time validation snapshot, the same one the
members use for early stopping and calibration. The combiner is a logistic regression on each
member's log-odds before calibration (``predict_raw`` where a member has one), so its output is a
calibrated probability and its weights say how much each member is trusted:
``logit p = b + sum_m w_m logit(p_m)``.

``explain`` distributes that sum: each explaining member's per-feature contributions (its raw
log-odds) are scaled by its weight and added up by feature; a member without ``explain``
contributes one column ``<name>_score`` (its weighted log-odds). Row sums plus ``bias`` are the
ensemble's log-odds.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.linear_model import LogisticRegression

from churnguard.models.base import ChurnModel, fit_model
from churnguard.models.catalog import KINDS
from churnguard.snapshots import Snapshot

__all__ = ["StackedEnsemble"]

_EPS = 1e-4


def _member_logit(model: ChurnModel, snapshot: Snapshot) -> np.ndarray:
    raw = getattr(model, "predict_raw", None)
    p = raw(snapshot) if raw is not None else model.predict_proba(snapshot)
    return logit(np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS))


class StackedEnsemble(ChurnModel):
    """Stacked ensemble of ``members`` (names from :data:`churnguard.models.catalog.KINDS` or
    unfitted model instances, which are copied, never fitted in place); ``C`` is the
    combiner's inverse L2 strength.

    Fitted: ``members_`` (name -> fitted model), ``weights_`` (name -> w_m), ``intercept_``.
    :meth:`from_fitted` builds one on members fitted already (the backtest's) and fits only the
    combiner.
    """

    name: ClassVar[str] = "ensemble"

    def __init__(self, *, members: Sequence[str | ChurnModel] = ("btyd", "gbdt", "behaviour"),
                 C: float = 1.0) -> None:
        self.members = members
        self.C = C

    def _fresh_members(self) -> dict[str, ChurnModel]:
        fresh: dict[str, ChurnModel] = {}
        for member in self.members:
            if isinstance(member, ChurnModel):
                model = copy.deepcopy(member)
            elif member in KINDS and member != self.name:
                model = KINDS[member].build()
            else:
                raise ValueError(f"unknown ensemble member {member!r}; known: "
                                 f"{', '.join(n for n in KINDS if n != self.name)}")
            if model.name in fresh:
                raise ValueError(f"ensemble member {model.name!r} appears twice")
            fresh[model.name] = model
        if len(fresh) < 2:
            raise ValueError("an ensemble needs at least two members")
        return fresh

    def fit(self, train: Snapshot, *, validation: Snapshot | None = None,
            progress: Callable[[str], None] | None = None) -> StackedEnsemble:
        if validation is None:
            cutoffs = train.index.get_level_values(1)
            if cutoffs.nunique() < 2:
                raise ValueError("StackedEnsemble.fit needs a validation snapshot, or training "
                                 "rows at two or more cutoffs (the newest is held out)")
            held = np.asarray(cutoffs == cutoffs.max())
            train, validation = train.subset(~held), train.subset(held)
        members = self._fresh_members()
        for model in members.values():
            fit_model(model, train, validation=validation, progress=progress)
        return self._fit_combiner(members, validation)

    @classmethod
    def from_fitted(cls, members: dict[str, ChurnModel], validation: Snapshot, *,
                    C: float = 1.0) -> StackedEnsemble:
        """An ensemble of already fitted ``members``; only the combiner is fitted, on
        ``validation`` (which must be out of time for the members)."""
        ensemble = cls(members=tuple(members), C=C)
        return ensemble._fit_combiner(dict(members), validation)

    def _fit_combiner(self, members: dict[str, ChurnModel],
                      validation: Snapshot) -> StackedEnsemble:
        X = np.column_stack([_member_logit(m, validation) for m in members.values()])
        combiner = LogisticRegression(C=float(self.C), max_iter=1000).fit(X, validation.y())
        self.members_ = members
        self.weights_ = dict(zip(members, combiner.coef_[0].astype(float)))
        self.intercept_ = float(combiner.intercept_[0])
        return self

    def _logit(self, snapshot: Snapshot) -> np.ndarray:
        z = np.full(len(snapshot), self.intercept_)
        for name, model in self.members_.items():
            z += self.weights_[name] * _member_logit(model, snapshot)
        return z

    def predict_proba(self, snapshot: Snapshot) -> np.ndarray:
        self._check_fitted("predict_proba")
        return 1.0 / (1.0 + np.exp(-self._logit(snapshot)))

    def explain(self, snapshot: Snapshot) -> pd.DataFrame:
        self._check_fitted("explain")
        total = pd.DataFrame(index=snapshot.index)
        bias = np.full(len(snapshot), self.intercept_)
        for name, model in self.members_.items():
            w = self.weights_[name]
            try:
                part = model.explain(snapshot)
            except NotImplementedError:
                total[f"{name}_score"] = total.get(f"{name}_score", 0.0) + w * _member_logit(
                    model, snapshot)
                continue
            bias += w * part["bias"].to_numpy(dtype=float)
            part = part.drop(columns="bias") * w
            total = total.add(part, fill_value=0.0)
        total["bias"] = bias
        return total

    def explanation_values(self, snapshot: Snapshot) -> pd.DataFrame:
        self._check_fitted("explanation_values")
        frames = [snapshot.features]
        for model in self.members_.values():
            values = model.explanation_values(snapshot)
            frames.append(values[[c for c in values.columns
                                  if all(c not in f.columns for f in frames)]])
        return pd.concat(frames, axis=1)
