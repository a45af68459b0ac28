"""Multi-process training with DistributedDataParallel, set up from torchrun's environment.

``torchrun --nproc_per_node N -m molvae train ...`` (or the ``molvae`` script) starts N
processes; each reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. Batches are sharded by rank
inside :func:`molvae.training.fit`; metrics, MLflow logging, checkpoints and final sampling happen on
rank 0 only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistributedContext", "init_from_environment", "wrap_model"]


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def init_from_environment(device: torch.device) -> tuple[DistributedContext, torch.device]:
    """Join the process group described by torchrun's variables (a no-op for a single process).

    Returns the context and the device this process should use (``cuda:LOCAL_RANK`` on GPUs).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank, world_size, local_rank), device


def wrap_model(model: nn.Module, context: DistributedContext, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``model`` when several processes train together. Buffers are
    not broadcast before each forward: the model's (label statistics, flow masks, exemplars) do not
    change while it trains, and under CPU bf16 autocast torch's broadcast of them fails."""
    if not context.active:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)
