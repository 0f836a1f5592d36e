"""FSDP2 sharding (jobs/training/parallelize.py) on two real processes over gloo, against one process.

Two ranks with a batch each, gradients averaged, take the same step as one process with both
batches (the VQ's codebook statistics are all-reduced too), so FSDP's losses and weights must
equal the single-process run's; and a checkpoint gathered from the shards must resume it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from jobs.training.parallelize import full_value, load_training_state, parallelize, training_state
from models.checkpoint import build_model
from tests.conftest import free_ports

STEPS = 3


def batches(world: int) -> list[torch.Tensor]:
    """STEPS global batches of 2 windows a rank: (2 * world, T=2, C, H, W) in [0, 1]."""
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(2 * world, 2, 3, 90, 160, generator=generator) for _ in range(STEPS)]


def train(model, optimizer, frames: list[torch.Tensor]) -> list[float]:
    losses = []
    for batch in frames:
        loss = model(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        full_value(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
        optimizer.step()
        losses.append(loss.detach())
    return losses


def fresh(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("tokenizer", "tiny")


def sharded_worker(rank: int, world: int, port: int, out: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        own = [b[2 * rank : 2 * rank + 2] for b in batches(world)]
        model = parallelize(fresh(), "fsdp", torch.device("cpu"))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        losses = train(model, optimizer, own[:-1])
        state = training_state(model, optimizer)  # a collective; full tensors on rank 0 only

        # Resume from the gathered checkpoint in a new sharded model, as a restarted run does.
        state = [state]
        dist.broadcast_object_list(state, src=0)
        resumed = parallelize(fresh(seed=1), "fsdp", torch.device("cpu"))
        resumed_optimizer = torch.optim.AdamW(resumed.parameters(), lr=1e-3)
        load_training_state(resumed, resumed_optimizer, state[0])
        losses += train(resumed, resumed_optimizer, own[-1:])
        mean_losses = torch.stack(losses)
        dist.all_reduce(mean_losses)
        final = training_state(resumed, resumed_optimizer)
        if rank == 0:
            torch.save({"losses": mean_losses / world, "model": final["model"]}, out)
    finally:
        dist.destroy_process_group()


def test_fsdp_steps_equal_one_process_and_resume_from_a_gathered_checkpoint(tmp_path):
    world, out = 2, tmp_path / "fsdp.pt"
    mp.spawn(sharded_worker, args=(world, free_ports(1)[0], out), nprocs=world)
    sharded = torch.load(out, weights_only=True)

    model = fresh()
    reference = torch.stack(
        train(model, torch.optim.AdamW(model.parameters(), lr=1e-3), batches(world))
    )
    print(f"losses one process {reference.tolist()} FSDP x2 {sharded['losses'].tolist()}")
    assert sharded["losses"] == pytest.approx(reference, rel=1e-5)
    # The gathered checkpoint holds plain, whole tensors under the model's own names.
    assert sharded["model"].keys() == model.state_dict().keys()
    for name, value in model.state_dict().items():
        assert torch.allclose(sharded["model"][name], value, atol=1e-5), name
