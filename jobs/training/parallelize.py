"""Data parallelism applied to a model from outside it: DDP, or FSDP2 (`fully_shard`).

DDP keeps a whole replica on every worker: right for models that fit one device (up to the
coinrun preset). FSDP2 shards each ST block's parameters, gradients and optimizer state over the
workers and gathers a block's parameters only while it runs, so the paper's 10B dynamics model
fits in aggregate device memory. Both average gradients over the workers, so a step computes the
same update either way (tests/jobs/training/test_parallelize.py compares FSDP with one process).

Under FSDP the model is built as torchtitan builds it: on the meta device (no memory), then
sharded, then each rank allocates and initialises only its own shards. No process ever holds
the unsharded model. Checkpoints are sharded too (jobs/training/checkpoint.py).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from models.checkpoint import build_model, init_weights
from models.st_transformer import STBlock


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def shard(model: nn.Module, device: torch.device) -> nn.Module:
    """FSDP2 over every rank: each ST block a unit (gathered one at a time), then the rest."""
    mesh = dist.device_mesh.init_device_mesh(device.type, (dist.get_world_size(),))
    for block in [m for m in model.modules() if isinstance(m, STBlock)]:
        fully_shard(block, mesh=mesh)
    return fully_shard(model, mesh=mesh)


def build_parallel(stage: str, preset: str, strategy: str, device: torch.device) -> nn.Module:
    """The `stage` model of `preset` on `device`, ready for data-parallel training.

    Every rank must have seeded its RNG alike first: the initial weights are the same on all
    ranks (DDP also broadcasts rank 0's; FSDP's shards are cut from one initialisation)."""
    if world_size() > 1 and strategy == "fsdp":
        model = shard(build_model(stage, preset, device="meta"), device)
        model.to_empty(device=device)  # each rank allocates its own shards only
        init_weights(model, stage, preset)
        return model
    model = build_model(stage, preset).to(device)
    if world_size() == 1:
        return model
    import ray.train.torch

    return ray.train.torch.prepare_model(model)


def unwrap(model: nn.Module) -> nn.Module:
    """The model without a DDP or torch.compile wrapper. FSDP2 wraps nothing: its modules
    gather their shards in `forward`, a collective, so under FSDP every rank calls `forward`
    together, held-out evaluation included (and nothing but `forward`)."""
    model = getattr(model, "_orig_mod", model)
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def full_value(value: torch.Tensor) -> float:
    """A scalar that may be a DTensor (FSDP2's gradient norm) as a float."""
    return float(value.full_tensor() if isinstance(value, DTensor) else value)
