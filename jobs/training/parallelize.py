"""Data parallelism applied to a model from outside it: DDP, or FSDP2 (`fully_shard`).

DDP keeps a whole replica on every worker: right for models that fit one device (up to the
coinrun preset). FSDP2 shards each ST block's parameters, gradients and optimizer state over the
workers and gathers a block's parameters only while it runs, so the paper's 10B dynamics model
fits in aggregate device memory. Both average gradients over the workers, so a step computes the
same update either way (tests/jobs/training/test_parallelize.py compares FSDP with one process).

Checkpoints are written in one format whatever the strategy: full (unsharded) tensors keyed by
parameter name, gathered to rank 0, so a run can resume under the other strategy or another
worker count, and `genie eval` and play load the weights as a plain model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from models.st_transformer import STBlock

# Gathered to rank 0 on the CPU: the other ranks get empty dicts (only rank 0 writes).
SAVE_OPTIONS = StateDictOptions(full_state_dict=True, cpu_offload=True)
# Every rank reads the whole checkpoint and keeps its own shard.
LOAD_OPTIONS = StateDictOptions(full_state_dict=True)


def parallelize(model: nn.Module, strategy: str, device: torch.device) -> nn.Module:
    """`model` (on `device`) wrapped for data-parallel training over the process group."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return model
    if strategy == "fsdp":
        mesh = dist.device_mesh.init_device_mesh(device.type, (dist.get_world_size(),))
        for block in [m for m in model.modules() if isinstance(m, STBlock)]:
            fully_shard(block, mesh=mesh)  # gathered one block at a time
        return fully_shard(model, mesh=mesh)  # embeddings, heads, the rest
    import ray.train.torch

    return ray.train.torch.prepare_model(model)


def unwrap(model: nn.Module) -> nn.Module:
    """The model without a DDP or torch.compile wrapper. FSDP2 wraps nothing: its modules
    gather their shards in `forward`, a collective, so under FSDP every rank calls `forward`
    together, held-out evaluation included (and nothing but `forward`)."""
    model = getattr(model, "_orig_mod", model)
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def training_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Full model and optimizer state on rank 0 ({} elsewhere); every rank must call it."""
    model_state, optimizer_state = get_state_dict(unwrap(model), optimizer, options=SAVE_OPTIONS)
    return {"model": model_state, "optimizer": optimizer_state}


def load_training_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    set_state_dict(
        unwrap(model), optimizer, model_state_dict=state["model"],
        optim_state_dict=state["optimizer"], options=LOAD_OPTIONS,
    )  # fmt: skip


def full_value(value: torch.Tensor) -> float:
    """A scalar that may be a DTensor (FSDP2's gradient norm) as a float."""
    return float(value.full_tensor() if isinstance(value, DTensor) else value)
