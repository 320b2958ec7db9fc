"""Churn models on event sequences: ``behaviour`` and ``behaviour+gbdt``.

:class:`BehaviourChurnModel` encodes each customer's newest events before the cutoff
(:mod:`churnguard.sequences`) with a GRU or transformer encoder and puts a small head on the
customer vector plus two values outside the window (how many events and how long ago the first).
With ``pretrain="auto"`` the encoder is first pretrained without labels (CoLES,
:mod:`~churnguard.models.behaviour.pretrain`) on every customer's events before the newest
cutoff it may see (the validation cutoff), then fine-tuned on the labels with a smaller learning
rate for the pretrained body than for the fresh head (``body_lr_scale``; Howard & Ruder 2018,
"Universal Language Model Fine-tuning", sec. 3.2, discriminative fine-tuning). ``pretrain`` may
also name an encoder file written by ``churnguard pretrain``; ``"none"`` trains from scratch (the
supervised GRU / transformer of the leaderboard, named ``behaviour_gru`` /
``behaviour_transformer``). Probabilities are calibrated on the out-of-time validation snapshot
as the GBDT's are. With ``tune_text=True`` the network also fine-tunes its own copy of the MiniLM
text encoder (:mod:`~churnguard.models.behaviour.text_tuning`) instead of reading frozen text
vectors.

:class:`BehaviourGBDTModel` adds the frozen pretrained customer vectors to the snapshot features
of :class:`~churnguard.models.gbdt.GBDTChurnModel` (Babaev et al. 2022 found such embeddings fed
to boosted trees a strong use of CoLES). Its ``explain`` is the GBDT's TreeSHAP with the vector's
dimensions summed into one ``behaviour_pattern`` contribution, so reasons still work.

Both score through :func:`~churnguard.models.behaviour.inference.embed` (batches of similar
length, ``torch.inference_mode``, threads set to the cores); ``runtime="onnx"`` runs the network
under ONNX Runtime instead, exported on the first prediction (equal within 1e-4).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from churnguard.models.base import ChurnModel, store_arguments
from churnguard.models.behaviour.encoders import EncoderConfig, build_encoder, context_features
from churnguard.models.behaviour.inference import OnnxNetwork, embed, export_onnx
from churnguard.models.behaviour.optim import (
    EarlyStopping,
    denormals_flushed,
    make_optimizer,
    use_cpu,
)
from churnguard.models.behaviour.pretrain import PretrainConfig, load_encoder, pretrain_sequences
from churnguard.models.behaviour.text_tuning import TextTower
from churnguard.models.calibration import CALIBRATIONS, make_calibrator
from churnguard.models.gbdt import GBDTChurnModel
from churnguard.sequences.batch import N_CONTEXT, EventSequences, length_batches, pad
from churnguard.sequences.cache import sequences_of
from churnguard.snapshots import Snapshot

__all__ = ["BEHAVIOUR_COLUMN", "RUNTIMES", "BehaviourChurnModel", "BehaviourGBDTModel", "embed"]

BEHAVIOUR_COLUMN = "behaviour_pattern"
#: How a fitted model runs its network to score: PyTorch, or ONNX Runtime on an export of it.
RUNTIMES = ("torch", "onnx")
_EMBED_PREFIX = "behaviour_emb_"


class _Network(nn.Module):
    """Encoder + head: customer vector and context values to one churn logit; with a
    ``text_tower``, the batch's text vectors are encoded by it first."""

    def __init__(self, encoder: nn.Module, hidden: int, dropout: float,
                 text_tower: TextTower | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(encoder.dim + N_CONTEXT, hidden), nn.GELU(),
                                  nn.Dropout(dropout), nn.Linear(hidden, 1))
        self.text_tower = text_tower

    def vectors(self, batch) -> torch.Tensor:  # noqa: ANN001
        """The customer vectors (B, dim)."""
        # Networks pickled before the option existed have no text_tower.
        tower = getattr(self, "text_tower", None)
        return self.encoder(batch if tower is None else tower.fill(batch))

    def forward(self, batch) -> torch.Tensor:  # noqa: ANN001
        z = self.vectors(batch)
        return self.head(torch.cat([z, context_features(batch)], dim=-1)).squeeze(-1)


def _pretrain_cutoff(*snapshots: Snapshot) -> Any:
    newest = max(s.index.get_level_values(1).max() for s in snapshots if len(s))
    return pd.Timestamp(newest).to_pydatetime()


class _SequenceModelMixin:
    """Encoder construction, pretraining and the scoring runtime shared by both models."""

    def _check_runtime(self) -> str:
        # Models pickled before the option existed have no ``runtime``: PyTorch.
        runtime = getattr(self, "runtime", "torch")
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
        return runtime

    def _scorer(self, network: nn.Module) -> Callable[[Any], Any]:
        """What scores a batch: ``network`` itself, or with ``runtime="onnx"`` its ONNX Runtime
        session (exported on first use, dropped on pickling and rebuilt after)."""
        if self._check_runtime() == "torch":
            return network
        session = self.__dict__.get("_onnx")
        if session is None:
            session = self._onnx = OnnxNetwork(export_onnx(network), threads=self.n_threads)
        return session

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_onnx"}

    def encoder_config(self) -> EncoderConfig:
        """The shape of the encoder this model builds or pretrains (``churnguard pretrain``
        writes one of this shape, so the model can fine-tune it)."""
        return EncoderConfig(kind=self.encoder, d_model=self.d_model, n_layers=self.n_layers,
                             n_heads=self.n_heads, d_ff=2 * self.d_model, dropout=self.dropout,
                             use_text=self.use_text)

    def pretrain_config(self) -> PretrainConfig:
        """The pretraining this model runs inside ``fit`` with ``pretrain="auto"`` (run it
        ahead with :func:`~churnguard.models.behaviour.pretrain.pretrain` to share the encoder
        file between models of this shape)."""
        return PretrainConfig(encoder=self.encoder_config(), epochs=self.pretrain_epochs,
                              max_customers=self.pretrain_max_customers, max_len=self.max_len,
                              seed=self.seed, threads=self.n_threads)

    def _pretrained_encoder(self, train: Snapshot, validation: Snapshot | None,
                            say: Callable[[str], None]) -> tuple[nn.Module, dict]:
        if self.pretrain not in ("auto", "none"):
            encoder, summary = load_encoder(self.pretrain)
            if encoder.config.use_text != self.use_text:
                raise ValueError(f"the encoder in {self.pretrain} was pretrained with use_text="
                                 f"{encoder.config.use_text}; construct the model with the same")
            return encoder, summary
        # Every customer's events before the newest cutoff the fit may see: no labels are used,
        # and nothing at or after that cutoff is read.
        cutoff = _pretrain_cutoff(train, *([validation] if validation is not None else []))
        cache = train.meta.get("sequences")
        if cache is None:
            raise ValueError("pretrain='auto' needs the snapshot's sequence cache "
                             "(meta['sequences']); build it with build_snapshot")
        seqs = cache.at(cutoff, texts=self.use_text).sequences
        say(f"pretraining on customers' events before {cutoff:%Y-%m-%d}")
        result = pretrain_sequences(seqs, config=self.pretrain_config(), progress=say)
        return result.encoder, {"history": result.history, "best_epoch": result.best_epoch,
                                "seconds": result.seconds, "n_customers": result.n_customers,
                                "cutoff": cutoff.isoformat()}


class BehaviourChurnModel(_SequenceModelMixin, ChurnModel):
    """Sequence encoder + head, fine-tuned for churn (see the module docstring).

    Hyper-parameters: ``encoder`` ("gru" or "transformer"), ``d_model``, ``n_layers``,
    ``n_heads``, ``dropout``, ``max_len`` (newest events read per customer), ``use_text``
    (review/ticket text vectors in the tokens), ``pretrain`` ("auto", "none" or an encoder
    file), ``pretrain_epochs``, ``pretrain_max_customers``, ``epochs``, ``batch_size``, ``lr``
    (the head's), ``body_lr_scale`` (the pretrained encoder's learning rate relative to the
    head's), ``weight_decay``, ``warmup_fraction``, ``patience`` (early stopping on the
    validation log-loss, in epochs), ``grad_clip``, ``calibration``, ``seed``, ``n_threads``
    (torch's and ONNX Runtime's CPU threads; default every core), ``runtime`` ("torch", the
    default, or "onnx": score with ONNX Runtime on an export of the fitted network made at the
    first prediction; :mod:`~churnguard.models.behaviour.inference`), ``tune_text`` (fine-tune
    the MiniLM text encoder end to end, at ``text_lr``; needs ``use_text`` and the torch
    runtime; :mod:`~churnguard.models.behaviour.text_tuning`).

    Fitted: ``network_``, ``calibrator_``, ``history_`` (per-epoch losses), ``best_epoch_``,
    ``pretrained_`` (the pretraining summary, or None).
    """

    def __init__(self, *, encoder: str = "gru", d_model: int = 64, n_layers: int = 1,
                 n_heads: int = 4, dropout: float = 0.1, max_len: int = 256,
                 use_text: bool = True, pretrain: str = "auto", pretrain_epochs: int = 4,
                 pretrain_max_customers: int | None = 30_000, epochs: int = 8,
                 batch_size: int = 128, lr: float = 2e-3, body_lr_scale: float = 0.3,
                 weight_decay: float = 0.01, warmup_fraction: float = 0.05, patience: int = 2,
                 grad_clip: float = 1.0, calibration: str = "isotonic", seed: int = 0,
                 n_threads: int | None = None, runtime: str = "torch", tune_text: bool = False,
                 text_lr: float = 2e-5) -> None:
        store_arguments(self, locals())

    @property  # type: ignore[override]
    def name(self) -> str:
        """``behaviour`` (pretrained and fine-tuned) or ``behaviour_gru`` /
        ``behaviour_transformer`` (supervised from scratch)."""
        return "behaviour" if self.pretrain != "none" else f"behaviour_{self.encoder}"

    @property
    def _tunes_text(self) -> bool:
        # Models pickled before the option existed have no ``tune_text``.
        return bool(getattr(self, "tune_text", False))

    def _sequences(self, snapshot: Snapshot) -> EventSequences:
        return sequences_of(snapshot, max_len=self.max_len, texts=self.use_text,
                            strings=self._tunes_text)

    @denormals_flushed()
    def fit(self, train: Snapshot, *, validation: Snapshot | None = None,
            progress: Callable[[str], None] | None = None) -> BehaviourChurnModel:
        say = progress or (lambda message: None)
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {list(CALIBRATIONS)}, "
                             f"got {self.calibration!r}")
        if self.encoder not in ("gru", "transformer"):
            raise ValueError(f"encoder must be 'gru' or 'transformer', got {self.encoder!r}")
        self._check_runtime()
        if self._tunes_text and not self.use_text:
            raise ValueError("tune_text=True fine-tunes the text encoder: it needs use_text=True")
        if self._tunes_text and self.runtime != "torch":
            raise ValueError("tune_text=True scores with PyTorch only (the ONNX export has no "
                             "text encoder); use runtime='torch'")
        self.__dict__.pop("_onnx", None)  # a refit network needs a fresh export
        if validation is None:
            held = np.asarray(train.index.get_level_values(1) == train.index.get_level_values(1)
                              .max())
            if held.all():
                held = np.random.default_rng(self.seed).random(len(train)) < 0.2
            train, validation = train.subset(~held), train.subset(held)
        y_train, y_valid = train.y(), validation.y()
        if np.unique(y_train).size < 2:
            raise ValueError("BehaviourChurnModel.fit: the training labels are all one class; "
                             "use more cutoffs or a longer horizon")
        use_cpu(self.n_threads)
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)

        pretrained = None
        if self.pretrain == "none":
            encoder = build_encoder(self.encoder_config())
        else:
            encoder, pretrained = self._pretrained_encoder(train, validation, say)
        torch.manual_seed(self.seed + 1)
        network = _Network(encoder, hidden=self.d_model, dropout=self.dropout,
                           text_tower=TextTower() if self._tunes_text else None)
        seqs_train, seqs_valid = self._sequences(train), self._sequences(validation)

        lengths = np.minimum(seqs_train.lengths, self.max_len)
        steps = len(length_batches(lengths, self.batch_size)) * self.epochs
        body_lr = self.lr * (self.body_lr_scale if pretrained is not None else 1.0)
        groups = [{"params": list(network.encoder.parameters()), "lr": body_lr},
                  {"params": list(network.head.parameters()), "lr": self.lr}]
        if network.text_tower is not None:
            groups.append({"params": list(network.text_tower.parameters()), "lr": self.text_lr})
        optimizer, schedule = make_optimizer(
            groups, weight_decay=self.weight_decay, warmup=int(self.warmup_fraction * steps),
            total=steps)
        stopper = EarlyStopping(self.patience)
        target = torch.from_numpy(y_train.astype(np.float32))
        history = []
        for epoch in range(self.epochs):
            t0 = time.perf_counter()
            network.train()
            total = 0.0
            for rows in length_batches(lengths, self.batch_size, rng=rng):
                logit = network(pad(seqs_train, rows, max_len=self.max_len,
                                    strings=self._tunes_text))
                loss = F.binary_cross_entropy_with_logits(logit, target[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(network.parameters(), self.grad_clip)
                optimizer.step()
                schedule.step()
                total += float(loss.detach()) * len(rows)
            valid_logit = embed(network.encoder, seqs_valid, max_len=self.max_len,
                                head=network, threads=self.n_threads,
                                strings=self._tunes_text)
            valid_loss = float(F.binary_cross_entropy_with_logits(
                torch.from_numpy(valid_logit), torch.from_numpy(y_valid.astype(np.float32))))
            history.append({"epoch": epoch, "train_loss": total / len(y_train),
                            "validation_loss": valid_loss, "seconds": time.perf_counter() - t0})
            say(f"epoch {epoch + 1}/{self.epochs}: train {history[-1]['train_loss']:.4f}, "
                f"validation {valid_loss:.4f}")
            if stopper.step(valid_loss, network, epoch):
                break
        stopper.restore(network)
        network.eval()
        self.network_ = network
        self.history_ = history
        self.best_epoch_ = stopper.best_epoch
        self.pretrained_ = pretrained
        raw_valid = self._raw(seqs_valid)
        self.calibrator_ = make_calibrator(self.calibration).fit(raw_valid, y_valid)
        self.n_train_ = int(len(y_train))
        return self

    def _raw(self, seqs: EventSequences) -> np.ndarray:
        logit = embed(self.network_.encoder, seqs, max_len=self.max_len,
                      head=self._scorer(self.network_), threads=self.n_threads,
                      strings=self._tunes_text)
        return 1.0 / (1.0 + np.exp(-logit.astype(float)))

    def predict_raw(self, snapshot: Snapshot) -> np.ndarray:
        """The network's probability before calibration."""
        self._check_fitted("predict_raw")
        return self._raw(self._sequences(snapshot))

    def predict_proba(self, snapshot: Snapshot) -> np.ndarray:
        self._check_fitted("predict_proba")
        return np.clip(self.calibrator_.predict(self.predict_raw(snapshot)), 0.0, 1.0)

    def embed(self, snapshot: Snapshot) -> np.ndarray:
        """The fine-tuned encoder's customer vectors (n, d_model), computed with PyTorch."""
        self._check_fitted("embed")
        seqs = self._sequences(snapshot)
        if not self._tunes_text:
            return embed(self.network_.encoder, seqs, max_len=self.max_len,
                         threads=self.n_threads)
        if len(seqs) == 0:
            return np.zeros((0, self.network_.encoder.dim), dtype=np.float32)
        return embed(self.network_.encoder, seqs, max_len=self.max_len,
                     head=self.network_.vectors, threads=self.n_threads, strings=True)


class BehaviourGBDTModel(_SequenceModelMixin, ChurnModel):
    """GBDT on the snapshot features plus frozen, pretrained customer vectors.

    Hyper-parameters: the encoder's (``encoder``, ``d_model``, ``n_layers``, ``n_heads``,
    ``dropout``, ``max_len``, ``use_text``), pretraining's (``pretrain``: "auto" or an encoder
    file; ``pretrain_epochs``, ``pretrain_max_customers``), and the GBDT's (``n_estimators``,
    ``learning_rate``, ``num_leaves``, ``early_stopping_rounds``, ``calibration``, ``n_jobs``),
    ``seed``, ``n_threads`` (torch).

    Fitted: ``encoder_``, ``gbdt_``, ``pretrained_``, ``embedding_columns_``.
    """

    name: ClassVar[str] = "behaviour+gbdt"

    def __init__(self, *, encoder: str = "gru", d_model: int = 64, n_layers: int = 1,
                 n_heads: int = 4, dropout: float = 0.1, max_len: int = 256,
                 use_text: bool = True, pretrain: str = "auto", pretrain_epochs: int = 4,
                 pretrain_max_customers: int | None = 30_000, n_estimators: int = 2000,
                 learning_rate: float = 0.03, num_leaves: int = 31,
                 early_stopping_rounds: int = 100, calibration: str = "isotonic",
                 seed: int = 0, n_jobs: int | None = None, n_threads: int | None = None,
                 runtime: str = "torch") -> None:
        store_arguments(self, locals())

    def _augmented(self, snapshot: Snapshot) -> Snapshot:
        seqs = sequences_of(snapshot, max_len=self.max_len, texts=self.use_text)
        vectors = embed(self.encoder_, seqs, max_len=self.max_len,
                        head=self._scorer(self.encoder_), threads=self.n_threads)
        extra = pd.DataFrame(vectors.astype(float), index=snapshot.index,
                             columns=self.embedding_columns_)
        return Snapshot(features=pd.concat([snapshot.features, extra], axis=1),
                        labels=snapshot.labels, orders=snapshot.orders,
                        horizon_days=snapshot.horizon_days, meta=dict(snapshot.meta))

    @denormals_flushed()
    def fit(self, train: Snapshot, *, validation: Snapshot | None = None,
            progress: Callable[[str], None] | None = None) -> BehaviourGBDTModel:
        say = progress or (lambda message: None)
        if self.pretrain == "none":
            raise ValueError("BehaviourGBDTModel needs pretrained vectors: pretrain='auto' or an "
                             "encoder file, not 'none'")
        self._check_runtime()
        self.__dict__.pop("_onnx", None)  # a refit encoder needs a fresh export
        use_cpu(self.n_threads)
        torch.manual_seed(self.seed)
        encoder, pretrained = self._pretrained_encoder(train, validation, say)
        self.encoder_ = encoder.eval()
        self.pretrained_ = pretrained
        self.embedding_columns_ = [f"{_EMBED_PREFIX}{i}" for i in range(encoder.dim)]
        self.gbdt_ = GBDTChurnModel(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            num_leaves=self.num_leaves, early_stopping_rounds=self.early_stopping_rounds,
            calibration=self.calibration, seed=self.seed, n_jobs=self.n_jobs,
        ).fit(self._augmented(train),
              validation=None if validation is None else self._augmented(validation))
        self.snapshot_features_ = [c for c in self.gbdt_.snapshot_features_
                                   if c not in self.embedding_columns_]
        return self

    def predict_raw(self, snapshot: Snapshot) -> np.ndarray:
        self._check_fitted("predict_raw")
        return self.gbdt_.predict_raw(self._augmented(snapshot))

    def predict_proba(self, snapshot: Snapshot) -> np.ndarray:
        self._check_fitted("predict_proba")
        return self.gbdt_.predict_proba(self._augmented(snapshot))

    def explain(self, snapshot: Snapshot) -> pd.DataFrame:
        """The GBDT's TreeSHAP contributions with the vector's dimensions summed into one
        ``behaviour_pattern`` column (row sums + bias still give the raw log-odds)."""
        self._check_fitted("explain")
        contributions = self.gbdt_.explain(self._augmented(snapshot))
        pattern = contributions[self.embedding_columns_].sum(axis=1)
        out = contributions.drop(columns=self.embedding_columns_)
        out.insert(len(out.columns) - 1, BEHAVIOUR_COLUMN, pattern)
        return out

    def explanation_values(self, snapshot: Snapshot) -> pd.DataFrame:
        """The GBDT's values, with ``behaviour_pattern`` holding the vector's norm."""
        self._check_fitted("explanation_values")
        values = self.gbdt_.explanation_values(self._augmented(snapshot))
        pattern = np.linalg.norm(values[self.embedding_columns_].to_numpy(dtype=float), axis=1)
        values = values.drop(columns=self.embedding_columns_)
        values[BEHAVIOUR_COLUMN] = pattern
        return values
