"""One process of the 2-rank gradient check in test_distributed.py (run by torchrun).

Each rank computes the pretraining step's loss on its half of a fixed global batch through
DistributedDataParallel and saves the loss and the gradients it ends with."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from churnguard.models.behaviour.encoders import build_encoder
from churnguard.models.behaviour.pretrain import _Pretrainer, _step_loss, current_world
from test_distributed import CASES, check_inputs


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    world = current_world()
    for name in CASES:
        seqs, config, customers = check_inputs(name)
        torch.manual_seed(0)
        net = DistributedDataParallel(_Pretrainer(build_encoder(config.encoder), None))
        loss, _, _ = _step_loss(net, seqs, customers, config, np.random.default_rng(3),
                                world=world)
        loss.backward()
        grads = {k: p.grad.clone() for k, p in net.module.named_parameters()
                 if p.grad is not None}
        torch.save({"loss": loss.detach(), "grads": grads}, out / f"{name}-rank{world.rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
