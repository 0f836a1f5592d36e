"""The Ray Train loop every stage shares: one `train_loop_per_worker`, stage-specific parts apart.

What a checkpoint holds (jobs/training/checkpoint.py): model and optimizer shards, scheduler,
step, each rank's RNG state, data position, the MLflow run id and the model config, so a run
restarted by Ray Train after a worker dies (or rerun by the user under the same name) continues
the same MLflow run with no step logged twice or skipped, each rank drawing what it would have.

Rank r seeds its RNG with `seed + r` once the (identical) initial weights are built, so the
ranks draw different MaskGIT masks and dropout: N workers see N mask patterns, not one.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch

from jobs.common.tracking import Tracker
from jobs.training import checkpoint
from jobs.training.config import TrainConfig
from jobs.training.parallelize import build_parallel, full_value, unwrap
from jobs.training.schedule import warmup_cosine
from jobs.training.stages import STAGES, Stage, heldout_note
from models.checkpoint import config_dict
from pipelines import storage, training_data


@contextmanager
def checkpoint_of(
    model, optimizer, rank: int, train_state: dict[str, Any] | None
) -> Iterator[ray.train.Checkpoint | None]:
    """This rank's part of a checkpoint (its shards, its RNG; rank 0 also the train state) as a
    Ray checkpoint in a scratch folder; Ray Train copies every rank's folder into one checkpoint
    in storage. The folder is removed once `ray.train.report` has copied it (synchronous upload):
    without that, every checkpoint of every run stayed in /tmp."""
    if train_state is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="genie-ckpt-") as directory:
        checkpoint.save(directory, unwrap(model), optimizer, rank, train_state)
        yield ray.train.Checkpoint.from_directory(directory)


def autocast(config: TrainConfig, device: torch.device):
    enabled = config.precision == "bf16" and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def say(line: str) -> None:
    """Progress to the job's log, once: Ray Train's patched `print` would echo it twice."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def train_loop_per_worker(values: dict[str, Any]) -> None:
    from jobs.common.config import build

    values = dict(values)
    run_id = values.pop("mlflow_run_id", None)  # opened by the driver; continued here
    config = build(TrainConfig, values)
    stage: Stage = STAGES[config.stage]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()

    torch.manual_seed(config.seed)  # the same initial weights on every rank
    # Sharded (FSDP) or replicated (DDP) before the optimizer exists: it holds the shards.
    model = build_parallel(config.stage, config.model, config.strategy, device)
    torch.manual_seed(config.seed + rank)  # each rank its own masks, dropout, ...
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.optim.lr,
        betas=(0.9, 0.95),
        weight_decay=config.optim.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: warmup_cosine(
            s, config.optim.warmup_steps, config.steps, config.optim.min_lr_ratio
        ),
    )
    step, batches_seen = 0, 0
    state, resumed_from = None, ray.train.get_checkpoint()
    if resumed_from is not None:
        fs, folder = resumed_from.filesystem, resumed_from.path
        # Before any shard is read: a model of another config fails here, naming the field.
        state = checkpoint.resume_state(fs, folder, config.stage, config.model)
        read = checkpoint.load(fs, folder, unwrap(model), optimizer, rank)
        scheduler.load_state_dict(state["scheduler"])
        step, batches_seen = state["step"], state["batches_seen"]
        run_id = state["mlflow_run_id"] or run_id
        say(f"[rank {rank}] resumed from step {step} (read {read / 2**20:.1f} MiB of shards)")
    if config.compile:
        model = torch.compile(model)

    tracker = None
    if rank == 0:
        tracker = Tracker.open(
            stage.experiment, config.name, uri=config.mlflow_uri, run_id=run_id,
            fallback_dir=None if storage.is_uri(config.storage_path) else Path(config.storage_path) / config.name,
        )  # fmt: skip
        if state is None:
            tracker.log_params(config.flat_params())
    # A restarted run replays the steps between its checkpoint (or step 0) and the crash; the
    # killed attempt logged those already, so they are not logged twice (same data, same RNG:
    # the replay computes the same values).
    logged_through = tracker.last_logged_step("loss") if tracker else -1
    heldout = stage.heldout_batch(config, device)
    if rank == 0:
        for note in (
            training_data.split_note(stage.name, config.data),
            heldout_note(stage.name, heldout, config.window),
        ):
            if note:
                say(note)
    if state is None:
        # Step 0 of every held-out curve: the untrained model, what training is measured against.
        baseline, _ = stage.evaluate(unwrap(model), heldout, config)  # every rank: see unwrap
        if tracker is not None and tracker.last_logged_step(next(iter(baseline))) < 0:
            tracker.log_metrics(baseline, step=0)
            say(f"[{stage.name}] step 0/{config.steps} " + " ".join(
                f"{k}={v:.4g}" for k, v in baseline.items()))  # fmt: skip

    shard = ray.train.get_dataset_shard("train")
    batches = shard.iter_torch_batches(
        batch_size=config.batch_size,
        drop_last=True,
        local_shuffle_buffer_size=config.shuffle_buffer or None,
        local_shuffle_seed=config.seed + rank,  # the same stream again on a resumed run
    )
    window_start, samples, started = time.perf_counter(), 0, time.perf_counter()
    for index, batch in enumerate(batches):
        if index < batches_seen:
            continue  # data position: a resumed run skips what the killed run consumed
        if step >= config.steps:
            break
        inputs = stage.inputs(batch, device, config)
        model.train()
        with autocast(config, device):
            loss, terms = stage.loss(model, inputs, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        step, batches_seen = step + 1, index + 1
        samples += len(next(iter(inputs.values())))

        last = step >= config.steps
        if step % config.log_every == 0 or last:
            elapsed = time.perf_counter() - window_start
            metrics = {
                "loss": loss.item(), **terms,
                "lr": scheduler.get_last_lr()[0], "grad_norm": full_value(grad_norm),
                "samples_per_s": samples * world / elapsed,
                "tokens_per_s": samples * world * stage.tokens_per_sample(config) / elapsed,
            }  # fmt: skip
            if step % config.eval_every == 0 or last:
                eval_metrics, images = stage.evaluate(unwrap(model), heldout, config)
                metrics.update(eval_metrics)
                if tracker is not None and step > logged_through:
                    stage.log_images(tracker, images, step)
            train_state = None
            if step % config.checkpoint_every == 0 or last:
                train_state = {
                    "scheduler": scheduler.state_dict(),
                    "step": step,
                    "batches_seen": batches_seen,
                    "mlflow_run_id": tracker.run_id if tracker else run_id,
                    "config": values,
                    "model_config": config_dict(config.stage, config.model),
                    "world_size": world,
                }
            if tracker is not None and step > logged_through:
                tracker.log_metrics(metrics, step=step)
                say(f"[{stage.name}] step {step}/{config.steps} " + " ".join(
                    f"{k}={v:.4g}" for k, v in metrics.items()))  # fmt: skip
            # Every rank writes its part (a collective), so every rank reports one.
            with checkpoint_of(model, optimizer, rank, train_state) as saved:
                ray.train.report({**metrics, "step": step}, checkpoint=saved)
            window_start, samples = time.perf_counter(), 0
    if step < config.steps:
        raise RuntimeError(
            f"the training data ran out at step {step} of {config.steps}: "
            f"{config.data} gives too few windows (windows_per_clip={config.windows_per_clip})"
        )
    export(unwrap(model), config, step, tracker.run_id if tracker else run_id)
    if tracker is not None:
        say(f"[{stage.name}] finished {step} steps in {time.perf_counter() - started:.0f}s")


def export(model, config: TrainConfig, step: int, run_id: str | None) -> None:
    """The weights for serving, each rank writing its own shards to
    storage_path/name/model/ (never gathered), with the model config and lineage."""
    fs, root = storage.filesystem(storage.join(config.storage_path, config.name, "model"))
    info = {
        "stage": config.stage, "preset": config.model, "step": step,
        "config": config_dict(config.stage, config.model), "mlflow_run_id": run_id,
        "data": config.data, "tokenizer_run": config.tokenizer_run, "lam_run": config.lam_run,
    }  # fmt: skip
    checkpoint.export_model(model, fs, root, info)
