"""The one list of churn model kinds: what each is called, what builds it, what it takes.

Every place that knows models by name reads this list: the backtest and ``train`` (a name on the
command line), the ``[models.behaviour]`` settings of churnguard.toml (which kinds take which
setting), the stacked ensemble (its members), the demo (the size it runs each model at) and the
contract test (every kind, :mod:`churnguard.models.checks`). Adding a kind is adding one entry.

A :class:`ModelKind` names a class and the constructor arguments that make the kind out of it
(``behaviour_gru`` is a :class:`~churnguard.models.behaviour.model.BehaviourChurnModel` that
never pretrains); the class is imported on first use (the behaviour models import torch), so reading the list
costs nothing.

>>> list(KINDS)  # doctest: +NORMALIZE_WHITESPACE
['recency', 'btyd', 'gbdt', 'gbdt+text', 'behaviour', 'behaviour_gru', 'behaviour_transformer',
 'behaviour+gbdt', 'ensemble']
>>> model = build("gbdt", learning_rate=0.1)
>>> model.name, model.learning_rate
('gbdt', 0.1)
>>> [kind.name for kind in KINDS.values() if kind.gives_reasons]
['gbdt', 'gbdt+text', 'behaviour+gbdt', 'ensemble']
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the classes are imported on first use: the command line reads this list
    from churnguard.models.base import ChurnModel
    from churnguard.models.behaviour.pretrain import PretrainConfig

__all__ = [
    "DEMO_MODELS",
    "KINDS",
    "ModelKind",
    "build",
    "demo_models",
    "demo_pretrain_config",
    "demo_settings",
    "kind",
]


@dataclass(frozen=True, kw_only=True)
class ModelKind:
    """One kind of churn model.

    ``model``: the class, as "module:Class". ``preset``: the constructor arguments that make this
    kind (on top of the class defaults). ``settings``: the ``[models.behaviour]`` settings of
    churnguard.toml it takes. ``gives_reasons``: it explains each score (per-feature
    contributions, hence reason sentences). ``demo``: the constructor arguments the demo runs it
    with (None: the demo does not run it).
    """

    name: str
    model: str
    preset: Mapping[str, Any] = field(default_factory=dict)
    settings: tuple[str, ...] = ()
    gives_reasons: bool
    demo: Mapping[str, Any] | None = None

    @property
    def factory(self) -> type[ChurnModel]:
        """The model class (imported now, if not yet)."""
        module, cls = self.model.split(":")
        return getattr(importlib.import_module(module), cls)

    def build(self, **arguments: Any) -> ChurnModel:
        """A new, unfitted model of this kind; ``arguments`` override the preset and defaults."""
        return self.factory(**{**self.preset, **arguments})


_BEHAVIOUR = "churnguard.models.behaviour.model:BehaviourChurnModel"
_SEQUENCE_SETTINGS = ("encoder", "d_model", "n_layers", "max_len", "use_text", "pretrain",
                      "pretrain_epochs", "pretrain_max_customers")
_FINE_TUNING_SETTINGS = ("epochs", "tune_text", "text_lr")
# The supervised controls keep their encoder and never pretrain.
_CONTROL_SETTINGS = ("d_model", "n_layers", "max_len", "use_text") + _FINE_TUNING_SETTINGS

# The demo's size: small enough that `make demo` stays within ten minutes on two cores, large
# enough for an honest comparison. Pretraining (CoLES, no labels) sees at most 8,000 customers for
# at most 3 epochs; the behaviour models read each customer's newest 32 events through a one-layer
# GRU of width 32 (with review text), and `behaviour` fine-tunes for at most 3 epochs (both stop
# early on held-out data). Measured on the 20,000-customer demo shop, width 32 over 32 events came
# within 0.003 out-of-time ROC-AUC of width 64 over 64 events in well under half the fine-tuning
# time.
_DEMO_SEQUENCES = {"encoder": "gru", "d_model": 32, "max_len": 32, "pretrain_epochs": 3,
                   "pretrain_max_customers": 8_000}
# The gradient-boosted trees (`gbdt` and the trees of `behaviour+gbdt`) learn at 0.06 instead of
# the models' 0.03: about half the trees, so training and the TreeSHAP reasons take about half the
# time. Out of time on the demo shop, gbdt scored ROC-AUC 0.8584 with 1,031 trees against 0.8587
# with 2,000 at 0.03; on three 50,000-customer shops (benchmarks/.data/models_50000_540_*),
# 0.8696 against 0.8702.
_DEMO_TREES = {"learning_rate": 0.06}

KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (
    ModelKind(name="recency", model="churnguard.models.baselines:RecencyModel",
              gives_reasons=False, demo={}),
    ModelKind(name="btyd", model="churnguard.models.btyd_churn:BTYDChurnModel",
              gives_reasons=False, demo={}),
    ModelKind(name="gbdt", model="churnguard.models.gbdt:GBDTChurnModel", gives_reasons=True,
              demo=_DEMO_TREES),
    # The same trees with the customers' recent texts as columns (features/text.py).
    ModelKind(name="gbdt+text", model="churnguard.models.gbdt_text:TextGBDTModel",
              gives_reasons=True),
    # Pretrained (CoLES, no labels) and fine-tuned; supervised from scratch; hybrid; stacked.
    ModelKind(name="behaviour", model=_BEHAVIOUR, gives_reasons=False,
              settings=_SEQUENCE_SETTINGS + _FINE_TUNING_SETTINGS,
              demo={**_DEMO_SEQUENCES, "epochs": 3}),
    ModelKind(name="behaviour_gru", model=_BEHAVIOUR, gives_reasons=False,
              preset={"encoder": "gru", "pretrain": "none"}, settings=_CONTROL_SETTINGS),
    ModelKind(name="behaviour_transformer", model=_BEHAVIOUR, gives_reasons=False,
              preset={"encoder": "transformer", "n_layers": 2, "pretrain": "none"},
              settings=_CONTROL_SETTINGS),
    ModelKind(name="behaviour+gbdt", model="churnguard.models.behaviour.model:BehaviourGBDTModel",
              gives_reasons=True, settings=_SEQUENCE_SETTINGS,
              demo={**_DEMO_SEQUENCES, **_DEMO_TREES}),
    ModelKind(name="ensemble", model="churnguard.models.ensemble:StackedEnsemble",
              gives_reasons=True),
)}

#: The models the demo backtests (the behaviour ones only with pretraining), in its order.
DEMO_MODELS: tuple[str, ...] = tuple(name for name, k in KINDS.items() if k.demo is not None)


def kind(name: str) -> ModelKind:
    """The kind called ``name``; a ValueError listing the known ones otherwise.

    >>> kind("lstm")
    Traceback (most recent call last):
    ...
    ValueError: unknown model 'lstm'; known: recency, btyd, gbdt, gbdt+text, behaviour, \
behaviour_gru, behaviour_transformer, behaviour+gbdt, ensemble
    """
    if name not in KINDS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(KINDS)}")
    return KINDS[name]


def build(name: str, **arguments: Any) -> ChurnModel:
    """A new, unfitted model of the kind ``name`` (``arguments`` override its preset)."""
    return kind(name).build(**arguments)


def demo_settings(name: str) -> dict[str, Any]:
    """The constructor arguments the demo runs ``name`` with (beyond its preset).

    >>> demo_settings("behaviour+gbdt")["learning_rate"], demo_settings("behaviour")["max_len"]
    (0.06, 32)
    """
    demo = kind(name).demo
    if demo is None:
        raise ValueError(f"the demo does not run {name!r}; it runs {', '.join(DEMO_MODELS)}")
    return dict(demo)


def demo_models(names: Sequence[str] = DEMO_MODELS, *,
                pretrained: str = "auto") -> list[ChurnModel]:
    """The models ``names`` at the demo's size; the ones that pretrain read the encoder file
    ``pretrained`` (or pretrain inside ``fit`` with "auto").

    >>> [(m.name, m.get_params().get("learning_rate")) for m in demo_models(["btyd", "gbdt"])]
    [('btyd', None), ('gbdt', 0.06)]
    """
    models = []
    for name in names:
        arguments = demo_settings(name)
        if "pretrain" in kind(name).settings:
            arguments["pretrain"] = pretrained
        models.append(build(name, **arguments))
    return models


def demo_pretrain_config() -> PretrainConfig:
    """The pretraining the demo's behaviour models would run inside ``fit`` (the demo runs it
    once ahead of them and hands them the encoder file)."""
    return demo_models(["behaviour"])[0].pretrain_config()  # type: ignore[attr-defined]
