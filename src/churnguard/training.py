"""Training the production model: fit on the newest labelled cutoffs, register, promote.

The newest cutoff whose horizon the data fully covers is the validation cutoff (early stopping
and calibration); the ``train_cutoffs`` cutoffs for fitting end their horizons on or before it
(the newest one horizon before it, the others 30 days apart before that) -- the same arrangement
the backtest measures, moved forward to the present (``churnguard.evaluate``: why purged).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnguard.config import BehaviourSettings, ChurnDefinition
# training_cutoffs lives in churnguard.cutoffs; it stays importable from here.
from churnguard.cutoffs import BacktestError, training_cutoffs
from churnguard.evaluate import metrics
from churnguard.models.base import ChurnModel, fit_model
from churnguard.models.catalog import KINDS
from churnguard.registry import CHAMPION, alias_version, register_model, set_alias
from churnguard.snapshots import build_snapshot
from churnguard.store import Store


def configured_models(names: Sequence[str], settings: BehaviourSettings, *,
                      root: Path) -> list[str | ChurnModel]:
    """The models ``names`` as ``train`` and ``backtest`` build them: a behaviour model (and the
    ensemble's behaviour member) with the project's [models.behaviour] settings, any other
    model by its name (its defaults). ``root``: the project folder, which a relative
    ``pretrain`` file is read from; a file that does not exist is a ValueError naming it.

    >>> from churnguard.config import BehaviourSettings
    >>> configured_models(["gbdt", "behaviour"], BehaviourSettings(), root=Path("."))
    ['gbdt', 'behaviour']
    """
    given = settings.given()
    if not given:
        return list(names)
    if given.get("pretrain") not in (None, "auto"):
        path = (root / str(given["pretrain"])).resolve()
        if not path.is_file():
            raise ValueError(f"models.behaviour.pretrain in churnguard.toml names {path}, which "
                             "does not exist; run `churnguard pretrain` first, or use \"auto\"")
        given["pretrain"] = str(path)

    def build(name: str) -> str | ChurnModel:
        if name == "ensemble":
            from churnguard.models.ensemble import StackedEnsemble  # noqa: PLC0415 (torch)

            members = StackedEnsemble().members
            return StackedEnsemble(members=[build(m) if isinstance(m, str) else m
                                            for m in members])
        if name not in KINDS or not KINDS[name].settings:
            return name
        return KINDS[name].build(**{k: v for k, v in given.items() if k in KINDS[name].settings})

    return [build(name) for name in names]


@dataclass(frozen=True, kw_only=True)
class TrainedModel:
    version: str
    name: str
    train_cutoffs: list[dt.datetime]
    validation_cutoff: dt.datetime
    n_train: int
    n_validation: int
    validation_metrics: dict[str, float | None]
    promoted: bool


def train_model(store: Store, *, definition: ChurnDefinition, model: str | ChurnModel = "gbdt",
                as_of: object = None, train_cutoffs: int | None = None, promote: bool | None = None,
                progress: Callable[[str], None] | None = None,
                links: dict[str, Any] | None = None) -> TrainedModel:
    """Fit ``model`` on the newest labelled cutoffs and register it as a new version.

    ``model``: a name from :data:`~churnguard.models.catalog.KINDS` (its default
    hyper-parameters), or an unfitted model instance (e.g. a behaviour model of a chosen size).
    ``promote``: True makes it the champion; None (default) makes it the champion only when
    there is none yet; False never. ``links``: recorded in the version's config under
    ``"gate"`` (how the champion/challenger gate relates it to other versions:
    :mod:`churnguard.champions`).
    """
    say = progress or (lambda message: None)
    if isinstance(model, ChurnModel):
        estimator, model = model, model.name
    elif model in KINDS:
        estimator = KINDS[model].build()
    else:
        raise BacktestError(f"unknown model {model!r}; known: {', '.join(KINDS)}")
    fit_cutoffs, validation = training_cutoffs(store, definition=definition, as_of=as_of,
                                               train_cutoffs=train_cutoffs)
    say(f"building snapshots at {len(fit_cutoffs) + 1} cutoffs")
    snapshot = build_snapshot(store, definition=definition, cutoffs=[*fit_cutoffs, validation])
    cutoffs = snapshot.index.get_level_values(1)
    is_validation = np.asarray(cutoffs == pd.Timestamp(validation))
    train, valid = snapshot.subset(~is_validation), snapshot.subset(is_validation)
    say(f"fitting {model} on {len(train):,} rows (validation {len(valid):,})")
    estimator = fit_model(estimator, train, validation=valid, progress=say)
    # In-sample for calibration, so optimistic; the honest figure is the backtest's.
    measured = metrics(model, valid.y(), estimator.predict_proba(valid)).to_dict()
    measured.pop("name", None)
    features = list(getattr(estimator, "snapshot_features_", list(train.features.columns)))
    version = register_model(
        store, estimator, name=model,
        config={"model": estimator.get_params(), "definition": definition.model_dump(mode="json"),
                **({"gate": dict(links)} if links else {})},
        data_window={"train_cutoffs": [f"{c:%Y-%m-%d}" for c in fit_cutoffs],
                     "validation_cutoff": f"{validation:%Y-%m-%d}",
                     "n_train": len(train), "n_validation": len(valid)},
        metrics={"validation": measured}, features=features)
    promoted = bool(promote) or (promote is None and alias_version(store, CHAMPION) is None)
    if promoted:
        set_alias(store, CHAMPION, version,
                  reason="first model" if promote is None else "promoted at training")
    return TrainedModel(version=version, name=model, train_cutoffs=fit_cutoffs,
                        validation_cutoff=validation, n_train=len(train), n_validation=len(valid),
                        validation_metrics=measured, promoted=promoted)
