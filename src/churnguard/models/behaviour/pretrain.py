"""Self-supervised pretraining of a sequence encoder on every customer's raw events, no labels.

The objective is CoLES (Babaev et al. 2022, "CoLES: Contrastive Learning for Event Sequences
with Self-Supervision", SIGMOD, sec. 3): sub-sequences cut at random from the same customer's
history are positives (they come from the same latent behaviour), sub-sequences of other
customers in the batch are negatives. Views are random contiguous slices ("random slices",
sec. 3.2). The loss is the multi-positive InfoNCE form of the supervised contrastive loss
(Khosla et al. 2020, "Supervised Contrastive Learning", NeurIPS, eq. 2, ``L_out``) with the
customer as the class, on L2-normalised embeddings at temperature ``temperature``.

Masked-event modelling (optional, ``mem_weight > 0``): a share ``mem_prob`` of the events of each
view has its tokens blanked and the encoder's state there predicts the event type, as BERT's
masked-token objective (Devlin et al. 2019, sec. 3.1) does for words. The literature found it
weaker than the contrastive objective on its own; here it is an auxiliary term.

Training: AdamW, linear warm-up and cosine decay, dropout, weight decay, gradient clipping,
early stopping on the held-out customers' loss, a checkpoint per epoch and TensorBoard logs of
the losses and the learning rate.

Across processes (torch.distributed initialised, as :mod:`.distributed` does under torchrun):
every process draws the same global batch of ``batch_customers`` x processes customers and the
same views, encodes its own share, and the embeddings of all processes are gathered (with their
gradients) before the contrastive loss, so the negatives are the whole global batch and the loss
is the single-process loss on the concatenated batch; DistributedDataParallel averages the
gradients, which then equal the single-process ones (tests/models/test_distributed.py).

>>> config = PretrainConfig(encoder=EncoderConfig(d_model=16), epochs=1)
>>> config.views, config.temperature
(2, 0.1)
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from churnguard.models.behaviour.encoders import EncoderConfig, build_encoder
from churnguard.models.behaviour.optim import (
    EarlyStopping,
    denormals_flushed,
    make_optimizer,
    use_cpu,
    warmup_cosine,
)
from churnguard.sequences.batch import EventSequences, PaddedBatch, pad_spans
from churnguard.sequences.tokens import VOCAB_SIZES

__all__ = ["PretrainConfig", "PretrainResult", "World", "coles_loss", "current_world",
           "gathered_coles_loss", "load_encoder", "pretrain", "pretrain_sequences",
           "sample_views"]

ENCODER_FILE = "encoder.pt"


class PretrainConfig(BaseModel):
    """What pretraining does (the computation is :func:`pretrain_sequences`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    encoder: EncoderConfig = EncoderConfig()
    epochs: int = Field(default=10, ge=1)
    batch_customers: int = Field(default=64, ge=2)
    views: int = Field(default=2, ge=2)
    min_view: int = Field(default=8, ge=1)
    max_view: int = Field(default=64, ge=1)
    temperature: float = Field(default=0.1, gt=0)
    mem_weight: float = Field(default=0.0, ge=0)
    mem_prob: float = Field(default=0.15, gt=0, lt=1)
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_fraction: float = Field(default=0.05, ge=0, lt=1)
    grad_clip: float = Field(default=1.0, gt=0)
    patience: int = Field(default=2, ge=1)
    heldout_fraction: float = Field(default=0.05, gt=0, lt=0.5)
    max_customers: int | None = Field(default=None, ge=4)
    max_len: int = Field(default=256, ge=1)
    seed: int = 0
    threads: int | None = None


@dataclass(kw_only=True)
class PretrainResult:
    """What pretraining produced: the encoder (best held-out loss), the per-epoch losses, and
    where its files are (``path``: the encoder file, None without ``out_dir``)."""

    encoder: nn.Module
    config: PretrainConfig
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    seconds: float = 0.0
    n_customers: int = 0
    path: Path | None = None
    cutoff: dt.datetime | None = None


def sample_views(starts: np.ndarray, lengths: np.ndarray, *, views: int, min_view: int,
                 max_view: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``views`` random contiguous slices of each customer's events [starts, starts + lengths)
    (CoLES random slices): flat [start, end) positions, customer-major (customer i's views are
    rows i*views .. i*views + views - 1). A slice holds min_view..max_view events (all of them
    when the customer has fewer than min_view).

    >>> s, e = sample_views(np.array([0, 10]), np.array([10, 3]), views=2, min_view=4,
    ...                     max_view=6, rng=np.random.default_rng(0))
    >>> bool(((e - s)[:2] >= 4).all() and ((e - s)[:2] <= 6).all()), (e - s)[2:].tolist()
    (True, [3, 3])
    """
    lengths = np.repeat(np.asarray(lengths, dtype=np.int64), views)
    base = np.repeat(np.asarray(starts, dtype=np.int64), views)
    low = np.minimum(lengths, min_view)
    high = np.minimum(lengths, max_view)
    size = low + np.floor(rng.random(len(lengths)) * (high - low + 1)).astype(np.int64)
    start = np.floor(rng.random(len(lengths)) * (lengths - size + 1)).astype(np.int64)
    return base + start, base + start + size


@dataclass(frozen=True)
class World:
    """This process's place among the processes that pretrain together: ``rank`` of ``size``
    (one process: 0 of 1)."""

    rank: int = 0
    size: int = 1


def current_world() -> World:
    """The torch.distributed process group's rank and size, or a world of one."""
    import torch.distributed as dist  # noqa: PLC0415

    if dist.is_available() and dist.is_initialized():
        return World(rank=dist.get_rank(), size=dist.get_world_size())
    return World()


def coles_loss(embeddings: torch.Tensor, owners: torch.Tensor, temperature: float) -> torch.Tensor:
    """Multi-positive InfoNCE (Khosla et al. 2020, eq. 2) over L2-normalised ``embeddings``
    whose rows with the same ``owners`` value are positives of each other."""
    z = F.normalize(embeddings, dim=-1)
    logits = z @ z.T / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    positive = (owners[:, None] == owners[None, :]) & ~eye
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    per_row = -(log_prob.masked_fill(~positive, 0.0).sum(1)) / positive.sum(1).clamp(min=1)
    return per_row.mean()


def gathered_coles_loss(embeddings: torch.Tensor, owners: torch.Tensor, temperature: float,
                        world: World) -> torch.Tensor:
    """:func:`coles_loss` over the rows of every process (``owners`` numbered across the global
    batch): every process gets the same value, the loss of the concatenated batch.

    The gather keeps the gradient: its backward sums, over processes, each one's gradient for
    this process's rows, so this process's rows receive ``world.size`` times their gradient
    of the global loss, and DistributedDataParallel's average over processes gives the
    single-process gradient exactly."""
    if world.size == 1:
        return coles_loss(embeddings, owners, temperature)
    import torch.distributed as dist  # noqa: PLC0415
    from torch.distributed.nn.functional import all_gather  # noqa: PLC0415

    everyone = torch.cat(all_gather(embeddings))
    owner_parts = [torch.empty_like(owners) for _ in range(world.size)]
    dist.all_gather(owner_parts, owners)
    return coles_loss(everyone, torch.cat(owner_parts), temperature)


class _MEMHead(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.out = nn.Linear(d_model, VOCAB_SIZES["type"])


class _Pretrainer(nn.Module):
    """The encoder and the masked-event head as one module whose forward does all the network
    work of a step: what DistributedDataParallel wraps (it synchronises what a forward used)."""

    def __init__(self, encoder: nn.Module, mem_head: _MEMHead | None) -> None:
        super().__init__()
        self.encoder, self.mem_head = encoder, mem_head

    def forward(self, batch: PaddedBatch, chosen: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if chosen is None:
            return self.encoder(batch), None
        vectors, states = self.encoder.encode(batch)
        return vectors, self.mem_head.out(states[chosen])


def _to(batch: PaddedBatch, device: torch.device) -> PaddedBatch:
    if device.type == "cpu":
        return batch
    return PaddedBatch({k: v.to(device) for k, v in batch.payload.items()},
                       batch.lengths.to(device), batch.texts)


def _mask_events(batch: PaddedBatch, prob: float, rng: np.random.Generator
                 ) -> tuple[PaddedBatch, torch.Tensor, torch.Tensor]:
    """Blank a share of real events (all their fields); return the batch, the positions and the
    true type codes there."""
    chosen = torch.from_numpy(rng.random(tuple(batch.mask.shape)) < prob) & batch.mask
    targets = batch.payload["cat"][..., 0][chosen]
    payload = dict(batch.payload)
    payload["cat"] = payload["cat"].masked_fill(chosen[..., None], 0)
    payload["num"] = payload["num"].masked_fill(chosen[..., None], 0.0)
    payload["text"] = payload["text"].masked_fill(chosen[..., None], 0.0)
    return PaddedBatch(payload, batch.lengths), chosen, targets


def _step_loss(net: nn.Module, seqs: EventSequences, customers: np.ndarray,
               config: PretrainConfig, rng: np.random.Generator, *, world: World = World(),
               mask_rng: np.random.Generator | None = None,
               device: torch.device = torch.device("cpu")) -> tuple[torch.Tensor, float, float]:
    """The loss of one step on the global batch ``customers``; with several processes this one
    encodes its share (the ``world.rank``-th of ``world.size`` equal slices) and the contrastive
    term is gathered over all. The views come from ``rng`` (the same on every process), the
    masks from ``mask_rng`` (this process's own; default ``rng``)."""
    starts, ends = sample_views(seqs.offsets[customers], seqs.lengths[customers],
                                views=config.views, min_view=config.min_view,
                                max_view=config.max_view, rng=rng)
    owners = torch.arange(len(customers)).repeat_interleave(config.views)
    if world.size > 1:
        share = len(customers) // world.size * config.views
        mine = slice(world.rank * share, (world.rank + 1) * share)
        starts, ends, owners = starts[mine], ends[mine], owners[mine]
    batch = pad_spans(seqs, starts, ends)
    mem_loss = torch.zeros((), device=device)
    if config.mem_weight > 0:
        batch, chosen, targets = _mask_events(batch, config.mem_prob, mask_rng or rng)
        vectors, logits = net(_to(batch, device), chosen.to(device))
        if len(targets):
            mem_loss = F.cross_entropy(logits, targets.to(device))
        elif world.size > 1:
            mem_loss = logits.sum() * 0.0  # every process's head takes part in the gradient sync
    else:
        vectors, _ = net(_to(batch, device))
    contrastive = gathered_coles_loss(vectors, owners.to(device), config.temperature, world)
    total = contrastive + config.mem_weight * mem_loss
    return total, float(contrastive.detach()), float(mem_loss.detach())


def _batches(customers: np.ndarray, lengths: np.ndarray, size: int,
             rng: np.random.Generator | None, *, processes: int = 1) -> list[np.ndarray]:
    # Customers of similar length together: their views have similar lengths too (bucketing).
    # Across processes each batch is cut to a multiple of their number (equal shares to gather).
    if rng is None:
        order = customers[np.argsort(lengths[customers], kind="stable")]
    else:
        order = customers[np.lexsort((rng.random(len(customers)), lengths[customers]))]
    out = [order[i:i + size] for i in range(0, len(order), size)]
    if processes > 1:
        out = [b[:len(b) - len(b) % processes] for b in out]
    out = [b for b in out if len(b) >= max(2, processes)]
    if rng is not None:
        out = [out[i] for i in rng.permutation(len(out))]
    return out


def _training_customers(seqs: EventSequences, config: PretrainConfig, rng: np.random.Generator
                        ) -> tuple[EventSequences, np.ndarray, np.ndarray]:
    """The customers pretraining uses (two or more events; a sample of ``max_customers``), each
    cut to the newest ``max_len`` events, and their rows for training and held out."""
    lengths = np.minimum(seqs.lengths, config.max_len)
    usable = np.flatnonzero(lengths >= 2)
    if config.max_customers is not None and len(usable) > config.max_customers:
        usable = np.sort(rng.choice(usable, config.max_customers, replace=False))
    if len(usable) < 8:
        raise ValueError(f"pretraining needs at least 8 customers with two or more events; "
                         f"the sequences have {len(usable)}")
    # The chosen customers only, each cut to the newest max_len events, once up front.
    seqs = seqs.take(usable, max_len=config.max_len)
    rows = np.arange(len(usable))
    held = rng.random(len(rows)) < config.heldout_fraction
    if held.sum() < 2 or (~held).sum() < 2:
        held = np.zeros(len(rows), dtype=bool)
        held[: max(2, len(rows) // 10)] = True
    return seqs, rows[~held], rows[held]


def _log_writer(folder: Path):  # noqa: ANN202 (a TensorBoard SummaryWriter)
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415

    return SummaryWriter(log_dir=str(folder / "tensorboard"))


def _save_checkpoint(folder: Path, epoch: int, encoder: nn.Module,
                     optimizer: torch.optim.Optimizer, config: PretrainConfig) -> None:
    torch.save({"epoch": epoch, "encoder": encoder.state_dict(),
                "optimizer": optimizer.state_dict(), "config": config.model_dump(mode="json")},
               folder / "checkpoints" / f"epoch-{epoch + 1:03d}.pt")


@denormals_flushed()
def pretrain_sequences(seqs: EventSequences, *, config: PretrainConfig,
                       out_dir: str | Path | None = None,
                       progress: Callable[[str], None] | None = None,
                       encoder: nn.Module | None = None,
                       device: str | torch.device = "cpu") -> PretrainResult:
    """Pretrain an encoder (a fresh one of ``config.encoder`` unless given) on ``seqs``.

    Customers with fewer than two events are left out (no two views to contrast). With
    ``out_dir``: a checkpoint per epoch under ``checkpoints/``, TensorBoard logs under
    ``tensorboard/`` and the best encoder in ``encoder.pt`` (read it with :func:`load_encoder`).

    Inside a torch.distributed process group every process calls this with the same ``seqs``
    and ``config`` (the module docstring says how the work is shared); only rank 0 writes
    ``out_dir``. ``device``: where the network runs (a process's own GPU under NCCL).
    """
    say = progress or (lambda message: None)
    started = time.perf_counter()
    world = current_world()
    device = torch.device(device)
    use_cpu(config.threads)
    torch.manual_seed(config.seed)
    # The same stream on every process: the same customers, batches and views everywhere.
    rng = np.random.default_rng(config.seed)
    mask_rng = rng if world.size == 1 else np.random.default_rng([config.seed, world.rank, 1])
    seqs, train_rows, held_rows = _training_customers(seqs, config, rng)
    lengths = seqs.lengths

    encoder = encoder if encoder is not None else build_encoder(config.encoder)
    mem_head = _MEMHead(config.encoder.d_model) if config.mem_weight > 0 else None
    modules = nn.ModuleList([encoder] + ([mem_head] if mem_head is not None else []))
    modules.to(device)
    net: nn.Module = _Pretrainer(encoder, mem_head)
    if world.size > 1:
        from torch.nn.parallel import DistributedDataParallel  # noqa: PLC0415

        net = DistributedDataParallel(net, device_ids=None if device.type == "cpu" else [device])
    global_batch = config.batch_customers * world.size
    steps_per_epoch = len(_batches(train_rows, lengths, global_batch, None,
                                   processes=world.size))
    total = steps_per_epoch * config.epochs
    optimizer, schedule = make_optimizer(
        [{"params": list(modules.parameters()), "lr": config.lr}],
        weight_decay=config.weight_decay,
        warmup=int(config.warmup_fraction * total), total=total)
    stopper = EarlyStopping(config.patience)

    folder = None if out_dir is None or world.rank != 0 else Path(out_dir)
    writer = None if folder is None else _log_writer(folder)
    history: list[dict[str, float]] = []
    step = 0
    say(f"pretraining on {len(train_rows):,} customers ({len(held_rows):,} held out), "
        f"{steps_per_epoch} steps per epoch"
        + (f", {world.size} processes" if world.size > 1 else ""))
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        net.train()
        losses = []
        for customers in _batches(train_rows, lengths, global_batch, rng, processes=world.size):
            loss, contrastive, mem = _step_loss(net, seqs, customers, config, rng, world=world,
                                                mask_rng=mask_rng, device=device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(modules.parameters(), config.grad_clip)
            optimizer.step()
            schedule.step()
            step += 1
            losses.append(float(loss.detach()))
            if writer is not None:
                logged = {"loss/train": losses[-1], "loss/train_contrastive": contrastive,
                          **({"loss/train_mem": mem} if mem_head is not None else {}),
                          "lr": schedule.get_last_lr()[0]}
                for name, value in logged.items():
                    writer.add_scalar(name, value, step)
        heldout = _heldout_loss(_Pretrainer(encoder, mem_head), seqs, held_rows, config,
                                global_batch, device)
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "heldout_loss": heldout,
                  "seconds": time.perf_counter() - t0,
                  "lr": float(config.lr * warmup_cosine(step, warmup=int(
                      config.warmup_fraction * total), total=total))}
        history.append(record)
        say(f"epoch {epoch + 1}/{config.epochs}: train {record['train_loss']:.4f}, held-out "
            f"{heldout:.4f} ({record['seconds']:.1f} s)")
        if writer is not None:
            writer.add_scalar("loss/heldout", heldout, step)
            _save_checkpoint(folder, epoch, encoder, optimizer, config)
        if stopper.step(heldout, encoder, epoch):
            say(f"early stop: no held-out improvement for {config.patience} epoch(s)")
            break
    stopper.restore(encoder)
    encoder.to("cpu").eval()
    if writer is not None:
        writer.close()
    result = PretrainResult(encoder=encoder, config=config, history=history,
                            best_epoch=stopper.best_epoch,
                            seconds=time.perf_counter() - started, n_customers=len(seqs))
    if folder is not None:
        result.path = save_encoder(result, folder / ENCODER_FILE)
    return result


@torch.no_grad()
def _heldout_loss(net: _Pretrainer, seqs: EventSequences, rows: np.ndarray,
                  config: PretrainConfig, size: int, device: torch.device) -> float:
    """Loss on held-out customers with fixed views (the same every epoch, so comparable), in
    batches of ``size`` (the global batch). Every process computes it alone, the same way, so
    that all stop at the same epoch."""
    net.eval()
    rng = np.random.default_rng(config.seed + 1)
    losses, weights = [], []
    for customers in _batches(rows, seqs.lengths, size, None):
        loss, _, _ = _step_loss(net, seqs, customers, config, rng, device=device)
        losses.append(float(loss))
        weights.append(len(customers))
    return float(np.average(losses, weights=weights)) if losses else float("nan")


def save_encoder(result: PretrainResult, path: str | Path) -> Path:
    """Write the encoder's weights with its config and the pretraining summary."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"format": 1, "encoder_config": result.config.encoder.model_dump(mode="json"),
                "pretrain_config": result.config.model_dump(mode="json"),
                "state": result.encoder.state_dict(), "history": result.history,
                "best_epoch": result.best_epoch, "n_customers": result.n_customers,
                "cutoff": None if result.cutoff is None else result.cutoff.isoformat()}, tmp)
    tmp.replace(path)
    return path


def load_encoder(path: str | Path) -> tuple[nn.Module, dict]:
    """(encoder in eval mode, the saved summary) from a file written by :func:`pretrain`."""
    path = Path(path)
    if path.is_dir():
        path = path / ENCODER_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no pretrained encoder here; run `churnguard pretrain` "
                                "or pass the encoder.pt it wrote")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("format") != 1:
        raise ValueError(f"{path}: encoder format {saved.get('format')!r}, this churnguard "
                         "reads 1; pretrain again")
    encoder = build_encoder(EncoderConfig(**saved["encoder_config"]))
    encoder.load_state_dict(saved["state"])
    return encoder.eval(), {k: v for k, v in saved.items() if k != "state"}


def pretrain(store, *, cutoff: object, config: PretrainConfig = PretrainConfig(),  # noqa: ANN001
             out_dir: str | Path, progress: Callable[[str], None] | None = None,
             cache_root: str | Path | None = None,
             train: Callable[[EventSequences, PretrainConfig], PretrainResult] | None = None,
             processes: int = 1) -> PretrainResult:
    """Pretrain on every customer's events strictly before ``cutoff`` in ``store``; write the
    encoder, checkpoints, TensorBoard logs and ``summary.json`` under ``out_dir``. ``train``
    (default :func:`pretrain_sequences` here) does the training on the sequences; ``processes``
    is recorded in the summary (:func:`.distributed.pretrain` passes both)."""
    from churnguard.cutoffs import to_cutoff  # noqa: PLC0415
    from churnguard.sequences.cache import SequenceCache  # noqa: PLC0415

    say = progress or (lambda message: None)
    when = to_cutoff(cutoff)
    t0 = time.perf_counter()
    cache = SequenceCache(store, max_len=max(config.max_len, 1), root=cache_root)
    seqs = cache.at(when, texts=config.encoder.use_text).sequences
    say(f"sequences before {when:%Y-%m-%d}: {len(seqs):,} customers, "
        f"{int(seqs.offsets[-1]):,} events ({time.perf_counter() - t0:.1f} s)")
    if train is None:
        result = pretrain_sequences(seqs, config=config, out_dir=out_dir, progress=progress)
    else:
        result = train(seqs, config)
    result.cutoff = when
    result.path = save_encoder(result, Path(out_dir) / ENCODER_FILE)
    (Path(out_dir) / "summary.json").write_text(json.dumps({
        "cutoff": when.isoformat(), "customers": result.n_customers,
        "best_epoch": result.best_epoch, "seconds": result.seconds,
        "history": result.history, "config": config.model_dump(mode="json"),
        "processes": processes}, indent=2))
    return result
