"""The ``pretrain`` command: self-supervised pretraining of the behaviour encoder.

Registered on the ``churnguard`` group when the package loads; a thin shell over
``churnguard.models.behaviour.pretrain``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from churnguard.cli.base import (
    BadInput,
    cli,
    date_callback,
    load_project,
    project_option,
    stage_spinner,
)


@cli.command()
@click.option("--as-of", default=None, callback=date_callback,
              help="Use the events strictly before this date (default: just after the last "
                   "event).")
@click.option("--encoder", type=click.Choice(["gru", "transformer"]), default=None,
              help="Sequence encoder to pretrain [default: models.behaviour.encoder in "
                   "churnguard.toml, else gru]. Its width, layers, events per customer and use "
                   "of text come from [models.behaviour] too, so that the behaviour models "
                   "can fine-tune it.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Most epochs; training stops early when the held-out loss stops improving.")
@click.option("--max-customers", type=click.IntRange(min=4), default=None,
              help="Pretrain on a random sample of this many customers (default: all).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the encoder, checkpoints and TensorBoard logs "
                   "(default: PROJECT/pretrained).")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train on this many processes of this machine (torch DistributedDataParallel "
                   "through torchrun; gloo on CPUs, NCCL with one GPU each where there are "
                   "GPUs). Each takes a share of every batch of customers and of the cores; "
                   "the contrastive negatives are gathered from all, so the loss is the "
                   "one-process loss on the whole batch. docs/scale.md: across machines.")
@project_option
def pretrain(as_of: dt.date | None, encoder: str | None, epochs: int, max_customers: int | None,
             out_dir: Path | None, nproc: int, project_dir: Path | None) -> None:
    """Pretrain the behaviour encoder on every customer's raw event stream, without labels.

    A contrastive objective over sub-sequences of the same customer (CoLES) teaches the encoder
    what makes a customer's behaviour theirs. The encoder (best held-out loss), a checkpoint per
    epoch and TensorBoard logs (`tensorboard --logdir OUT/tensorboard`) are written to OUT;
    docs/behaviour.md shows how the `behaviour` and `behaviour+gbdt` models use it.
    """
    from churnguard.cutoffs import LabelError, resolve_as_of
    from churnguard.models.behaviour.model import BehaviourChurnModel
    from churnguard.models.behaviour.pretrain import PretrainConfig
    from churnguard.models.behaviour.distributed import pretrain as run_pretrain

    project = load_project(project_dir)
    out = out_dir or project.root / "pretrained"
    # The encoder the configured behaviour models would build, so that they can fine-tune it.
    shape = {k: v for k, v in project.config.models.behaviour.given().items()
             if k in ("encoder", "d_model", "n_layers", "max_len", "use_text")}
    model = BehaviourChurnModel(**shape, **({"encoder": encoder} if encoder else {}))
    config = PretrainConfig(encoder=model.encoder_config(), epochs=epochs,
                            max_customers=max_customers, max_len=model.max_len)
    with project.open_store() as store, stage_spinner("Pretraining") as say:
        try:
            when = resolve_as_of(store, as_of)
            result = run_pretrain(store, cutoff=when, config=config, out_dir=out, progress=say,
                                  nproc=nproc)
        except (LabelError, ValueError) as exc:
            raise BadInput(str(exc)) from None
    last = result.history[-1] if result.history else {}
    click.echo(f"Pretrained a {model.encoder} encoder on {result.n_customers:,} customers in "
               f"{result.seconds:.0f} s: best epoch {result.best_epoch}, held-out loss "
               f"{last.get('heldout_loss', float('nan')):.3f}; written to {result.path}")
