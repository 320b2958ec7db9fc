"""Pretraining the behaviour encoder on several processes or machines (torch.distributed).

:func:`pretrain_with_torchrun` is what ``churnguard pretrain --nproc N`` runs: it writes the
sequences and the settings to a folder, starts ``N`` processes with torchrun (``python -m
torch.distributed.run --standalone``) and reads back the encoder rank 0 wrote. Each process runs
:func:`main`: it joins the process group (gloo on CPUs; NCCL, one GPU per process, where there
are GPUs), loads the same sequences and calls :func:`~.pretrain.pretrain_sequences`, which
shares every global batch among the processes and gathers the embeddings for the contrastive
loss (the pretrain module's docstring says why the gradients equal the single-process ones).

On a cluster, run the worker yourself with torchrun's multi-node options, the sequences file on
storage every node reads (docs/scale.md):

    torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        -m churnguard.models.behaviour.distributed SEQUENCES.npz SETTINGS.json OUT
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from churnguard.models.behaviour import pretrain as one_process
from churnguard.models.behaviour.pretrain import (
    PretrainConfig,
    PretrainResult,
    load_encoder,
    pretrain_sequences,
)
from churnguard.sequences.batch import EventSequences

__all__ = ["load_sequences", "main", "pretrain", "pretrain_with_torchrun", "save_sequences"]

_FIELDS = ("offsets", "cat", "num", "text", "text_vectors", "context")
SEQUENCES_FILE = "sequences.npz"
SETTINGS_FILE = "settings.json"
HISTORY_FILE = "history.json"


def save_sequences(seqs: EventSequences, path: str | Path) -> Path:
    """Write ``seqs`` (without text strings: pretraining reads the text vectors) to ``path``.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> len(load_sequences(save_sequences(EventSequences.empty(3), folder / "s.npz")))
    3
    """
    path = Path(path)
    with path.open("wb") as out:
        np.savez(out, **{name: getattr(seqs, name) for name in _FIELDS})
    return path


def load_sequences(path: str | Path) -> EventSequences:
    """The sequences :func:`save_sequences` wrote."""
    with np.load(path, allow_pickle=False) as saved:
        return EventSequences(**{name: saved[name] for name in _FIELDS})


def _threads_per_process(nproc: int) -> int:
    from churnguard.models.behaviour.optim import available_cores  # noqa: PLC0415

    return max(1, available_cores() // nproc)


def pretrain_with_torchrun(seqs: EventSequences, *, config: PretrainConfig, nproc: int,
                           out_dir: str | Path,
                           progress: Callable[[str], None] | None = None) -> PretrainResult:
    """Pretrain on ``seqs`` with ``nproc`` processes on this machine (torchrun); the encoder
    and its files land in ``out_dir`` as :func:`~.pretrain.pretrain_sequences` writes them.

    Each process gets ``batch_customers`` customers of every global batch, and the cores
    shared out (``config.threads`` unless set). Raises RuntimeError with the processes' last
    output when they fail."""
    if nproc < 1:
        raise ValueError(f"nproc must be at least 1, got {nproc}")
    say = progress or (lambda message: None)
    out = Path(out_dir)
    work = out / "distributed"
    work.mkdir(parents=True, exist_ok=True)
    if config.threads is None:
        config = config.model_copy(update={"threads": _threads_per_process(nproc)})
    save_sequences(seqs, work / SEQUENCES_FILE)
    (work / SETTINGS_FILE).write_text(config.model_dump_json())
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "churnguard.models.behaviour.distributed",
               str(work / SEQUENCES_FILE), str(work / SETTINGS_FILE), str(out)]
    started = time.perf_counter()
    tail: list[str] = []
    # The workers inherit this interpreter's import path, so an uninstalled checkout works too.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env) as running:
        assert running.stdout is not None
        for line in running.stdout:
            tail = (tail + [line.rstrip()])[-40:]
            if line.startswith("[rank 0] "):
                say(line[len("[rank 0] "):].rstrip())
    if running.returncode != 0:
        raise RuntimeError(f"distributed pretraining failed (exit {running.returncode}); the "
                           "processes' last output:\n" + "\n".join(tail))
    encoder, summary = load_encoder(out)
    history = json.loads((work / HISTORY_FILE).read_text())
    return PretrainResult(encoder=encoder, config=config, history=history,
                          best_epoch=int(summary["best_epoch"]),
                          seconds=time.perf_counter() - started,
                          n_customers=int(summary["n_customers"]), path=out / "encoder.pt")


def pretrain(store, *, cutoff: object, config: PretrainConfig, out_dir: str | Path,  # noqa: ANN001
             nproc: int = 1, progress: Callable[[str], None] | None = None,
             cache_root: str | Path | None = None) -> PretrainResult:
    """:func:`.pretrain.pretrain` (every customer's events before ``cutoff``, the files under
    ``out_dir``) on ``nproc`` processes of this machine; one: in this process."""
    if nproc == 1:
        return one_process.pretrain(store, cutoff=cutoff, config=config, out_dir=out_dir,
                                    progress=progress, cache_root=cache_root)

    def train(seqs: EventSequences, settings: PretrainConfig) -> PretrainResult:
        return pretrain_with_torchrun(seqs, config=settings, nproc=nproc, out_dir=out_dir,
                                      progress=progress)

    return one_process.pretrain(store, cutoff=cutoff, config=config, out_dir=out_dir,
                                progress=progress, cache_root=cache_root, train=train,
                                processes=nproc)


def main(argv: Sequence[str] | None = None) -> int:
    """One process of a distributed pretraining run (started by torchrun, which sets RANK,
    WORLD_SIZE, LOCAL_RANK and the rendezvous address)."""
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m churnguard.models.behaviour.distributed",
                                     description=main.__doc__)
    parser.add_argument("sequences", type=Path, help="the .npz save_sequences wrote")
    parser.add_argument("settings", type=Path, help="a PretrainConfig as JSON")
    parser.add_argument("out", type=Path, help="folder for the encoder (rank 0 writes it)")
    args = parser.parse_args(argv)
    gpus = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if gpus else torch.device("cpu")
    if gpus:
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if gpus else "gloo")
    try:
        rank = dist.get_rank()
        config = PretrainConfig.model_validate_json(args.settings.read_text())
        seqs = load_sequences(args.sequences)
        result = pretrain_sequences(
            seqs, config=config, out_dir=args.out if rank == 0 else None, device=device,
            progress=lambda message: print(f"[rank {rank}] {message}", flush=True))
        if rank == 0:
            (args.sequences.parent / HISTORY_FILE).write_text(json.dumps(result.history))
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
